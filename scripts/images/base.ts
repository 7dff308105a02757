// The offline bases, for machines that reach no container registry: a Debian made by debootstrap from
// the mirror apt already uses, imported into podman once and kept there (the tag is the cache), and on
// top of it a Node base holding this machine's own Node binary and npm.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { imageExists, imageLabel, podman, podmanEnv, signaturePolicy, STATE_DIR } from "./podman.ts";

export const DEBIAN_BASE = "localhost/dwop-base-debian:bookworm";
export const NODE_BASE = "localhost/dwop-base-node:bookworm";
/** What the worker can be asked to run: Python with pip (a task's requirements.txt), TLS roots for storage. */
const PACKAGES = ["python3", "python-is-python3", "python3-pip", "ca-certificates"];
const SUITE = "bookworm";
const DEFAULT_MIRROR = "http://deb.debian.org/debian";

type Say = (line: string) => void;

/** The Debian mirror apt uses on this machine (deb822 `URIs:` or a one-line `deb` entry). */
export function aptMirror(): string {
  const files = ["/etc/apt/sources.list"];
  for (const dir of ["/etc/apt/sources.list.d"]) {
    if (existsSync(dir)) files.push(...readdirSync(dir).map((f) => join(dir, f)));
  }
  for (const file of files) {
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const uri =
      /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text)?.[1] ??
      /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s/m.exec(text)?.[1];
    if (uri) return uri;
  }
  return DEFAULT_MIRROR;
}

function run(program: string, args: string[], say: Say): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: podmanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-4000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${program} ${args.join(" ")} exited with ${code}:\n${tail}`));
    });
    say(`$ ${program} ${args.join(" ")}`);
  });
}

/** The debootstrapped Debian base; made (about 1-2 minutes) only when podman does not have it yet. */
export async function ensureDebianBase(say: Say): Promise<string> {
  if (await imageExists(DEBIAN_BASE)) return DEBIAN_BASE;
  const mirror = aptMirror();
  const started = Date.now();
  const root = await mkdtemp(join(STATE_DIR, "rootfs-"));
  try {
    await run(
      "debootstrap",
      ["--variant=minbase", `--include=${PACKAGES.join(",")}`, SUITE, root, mirror],
      say,
    );
    // The package cache and lists would only make the image bigger.
    await run(
      "sh",
      ["-c", `rm -rf '${root}'/var/cache/apt/archives/*.deb '${root}'/var/lib/apt/lists/*`],
      say,
    );
    await run(
      "sh",
      [
        "-c",
        `tar -C '${root}' --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . | podman import ` +
          `--change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' ` +
          `--change 'CMD=["/bin/bash"]' - ${DEBIAN_BASE}`,
      ],
      say,
    );
  } finally {
    // debootstrap mounts /proc (and /sys) in the target; a failed run can leave them mounted.
    await run("sh", ["-c", `umount '${root}/proc' '${root}/sys' 2>/dev/null; true`], () => {});
    await rm(root, { recursive: true, force: true });
  }
  say(`made ${DEBIAN_BASE} from ${mirror} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return DEBIAN_BASE;
}

/**
 * The Node base: the Debian base plus the Node binary running this script (nodejs.org's build, which
 * needs only glibc and libstdc++, both in the Debian base) and its npm, with the `node` user (uid 1000)
 * that node:*-slim images have. Remade when this machine's Node or the Debian base changes.
 */
export async function ensureNodeBase(say: Say): Promise<string> {
  const debian = await ensureDebianBase(say);
  const from = (await podman(["image", "inspect", "--format", "{{.Id}}", debian])).trim();
  const version = process.version;
  const made = `${version}@${from}`;
  if ((await imageLabel(NODE_BASE, "dwop.node")) === made) return NODE_BASE;
  const npm = join(dirname(process.execPath), "..", "lib", "node_modules", "npm");
  if (!existsSync(join(npm, "bin", "npm-cli.js"))) throw new Error(`npm is not at ${npm}`);
  const context = await mkdtemp(join(STATE_DIR, "node-base-"));
  try {
    await cp(process.execPath, join(context, "node"));
    await cp(npm, join(context, "npm"), { recursive: true });
    await writeFile(
      join(context, "Containerfile"),
      [
        `FROM ${debian}`,
        `LABEL dwop.node=${made}`,
        "COPY node /usr/local/bin/node",
        "COPY npm /usr/local/lib/node_modules/npm",
        "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\",
        "    && groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home --shell /bin/bash node",
        "",
      ].join("\n"),
    );
    const previous = await podman(["image", "inspect", "--format", "{{.Id}}", NODE_BASE]).catch(() => "");
    await podman([
      "build",
      "--network=none",
      `--signature-policy=${signaturePolicy()}`,
      "-t",
      NODE_BASE,
      context,
    ]);
    if (previous.trim()) await podman(["rmi", previous.trim()]).catch(() => undefined);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  say(`made ${NODE_BASE} with Node ${version}`);
  return NODE_BASE;
}
