// Podman as DWOP's image builder and the Kubernetes simulator's container runtime, configured for
// machines like the CI host: runc (crun refuses a hybrid cgroup v1 layout), cgroupfs (no systemd), and
// ulimits that fit under the host's own (podman's defaults exceed them, and then nothing starts).
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Where the images' state lives between runs on one machine: podman's config, debootstrap scratch. */
export const STATE_DIR = process.env.DWOP_IMAGES_DIR ?? "/var/tmp/dwop-images";

/** The hard open-files limit of this machine: containers get it as theirs (podman asks for more). */
function hardNofile(): number {
  const out = execFileSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).trim();
  return out === "unlimited" ? 1048576 : Number(out);
}

let env: NodeJS.ProcessEnv | undefined;

/** Writes `text` to `path` unless it is already there; atomically, as other processes may be reading it. */
function writeOnce(path: string, text: string): void {
  let current: string | null = null;
  try {
    current = readFileSync(path, "utf8");
  } catch {
    // not there yet
  }
  if (current === text) return;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/**
 * The environment every podman command runs with: CONTAINERS_CONF names a containers.conf written for
 * this machine (so the host's /etc/containers is neither read for these settings nor changed), and a
 * signature policy that accepts local images (Debian ships its policy.json as a .dpkg-new file).
 */
export function podmanEnv(): NodeJS.ProcessEnv {
  if (env) return env;
  mkdirSync(STATE_DIR, { recursive: true });
  const conf = join(STATE_DIR, "containers.conf");
  const nofile = hardNofile();
  writeOnce(
    conf,
    [
      "[containers]",
      `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]`,
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      "",
    ].join("\n"),
  );
  env = { ...process.env, CONTAINERS_CONF: conf };
  return env;
}

/** The policy file for `--signature-policy`: local images, no signatures. */
export function signaturePolicy(): string {
  const path = join(STATE_DIR, "policy.json");
  writeOnce(path, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }) + "\n");
  return path;
}

/** Runs podman and returns its stdout; rejects with its stderr. */
export function podman(args: string[], options: { input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "podman",
      args,
      { env: podmanEnv(), maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`podman ${args.join(" ")}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Whether podman and runc are installed; the reason when not. */
export function podmanMissing(): string | null {
  for (const program of ["podman", "runc"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    } catch {
      return `${program} is not installed (apt-get install podman runc)`;
    }
  }
  return null;
}

/** Whether the image is in podman's local store. */
export async function imageExists(image: string): Promise<boolean> {
  return podman(["image", "exists", image]).then(
    () => true,
    () => false,
  );
}

/** One label of a local image, or null when the image or the label is missing. */
export async function imageLabel(image: string, label: string): Promise<string | null> {
  const out = await podman(["image", "inspect", "--format", "{{json .Labels}}", image]).catch(() => null);
  if (out === null) return null;
  const labels = JSON.parse(out) as Record<string, string> | null;
  return labels?.[label] ?? null;
}
