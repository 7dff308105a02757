// `npm run images`: builds dwop-pyworker:dev and dwop-dispatcher:dev with podman.
//   --base=production  the Dockerfiles' own bases (python:3.12-slim, node:24-slim) from a registry
//   --base=offline     a Debian made with debootstrap from apt's mirror (cached in podman), no registry
//   --base=auto        (default) production when docker.io answers, offline when it does not
import { resolve } from "node:path";
import { buildImages, type BaseKind } from "../scripts/images/build.ts";
import { podmanMissing } from "../scripts/images/podman.ts";

async function registryReachable(): Promise<boolean> {
  try {
    await fetch("https://registry-1.docker.io/v2/", { signal: AbortSignal.timeout(3000) });
    return true;
  } catch {
    return false;
  }
}

const asked = process.argv.find((a) => a.startsWith("--base="))?.slice("--base=".length) ?? "auto";
if (!["auto", "production", "offline"].includes(asked)) {
  console.error(`--base must be auto, production or offline, not ${asked}`);
  process.exit(2);
}
const missing = podmanMissing();
if (missing) {
  console.error(`npm run images: ${missing}`);
  process.exit(1);
}
let base = asked as BaseKind | "auto";
if (base === "auto") {
  base = (await registryReachable()) ? "production" : "offline";
  console.log(`base: ${base} (${base === "offline" ? "docker.io is not reachable" : "docker.io answers"})`);
}
const root = resolve(import.meta.dirname, "..");
await buildImages({ root, base, say: (line) => console.log(line) });
