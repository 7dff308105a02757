// Builds DWOP's two images with podman: the Python worker (each Job's container) and the dispatcher.
// An image is rebuilt only when what goes into it changed: its sources, its Dockerfile and its base's
// id are hashed into a label, so a test run on an unchanged tree spends a few podman inspects.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative } from "node:path";
import { ensureDebianBase, ensureNodeBase } from "./base.ts";
import { imageLabel, podman, signaturePolicy } from "./podman.ts";

export const WORKER_IMAGE = "dwop-pyworker:dev";
export const DISPATCHER_IMAGE = "dwop-dispatcher:dev";
const SOURCE_LABEL = "dwop.source";

/** production: the Dockerfiles' own FROM (a registry); offline: the debootstrapped bases made here. */
export type BaseKind = "production" | "offline";

export interface BuildOptions {
  root: string;
  base: BaseKind;
  say: (line: string) => void;
  /** Only these images (default: both). */
  only?: string[];
}

interface ImageRecipe {
  image: string;
  dockerfile: string;
  context: string;
  /** Files and folders (relative to the repository) whose content the image holds. */
  inputs: string[];
  offlineBase: (say: BuildOptions["say"]) => Promise<string>;
  offlineArgs: string[];
}

function recipes(root: string): ImageRecipe[] {
  const workerSources = readdirSync(join(root, "worker"))
    .filter((f) => /^dwop_.*\.py$/.test(f))
    .map((f) => `worker/${f}`);
  return [
    {
      image: WORKER_IMAGE,
      dockerfile: "worker/Dockerfile",
      context: "worker",
      inputs: ["worker/Dockerfile", ...workerSources],
      offlineBase: ensureDebianBase,
      offlineArgs: [],
    },
    {
      image: DISPATCHER_IMAGE,
      dockerfile: "deploy/dispatcher.Dockerfile",
      context: ".",
      inputs: [
        "deploy/dispatcher.Dockerfile",
        "deploy/dispatcher.Dockerfile.dockerignore",
        "package.json",
        "package-lock.json",
        "scripts/patch-postgres.mjs",
        "scripts/postgres-patch.mjs",
        "tsconfig.json",
        "bin/build-cli.ts",
        "shared",
        "dispatcher",
        "supabase/migrations",
      ],
      offlineBase: ensureNodeBase,
      // No registry: npm ci reads this machine's npm cache, where `npm ci` of the repository put every
      // package. An overlay mount (:O): what the build writes there (the Dockerfile cleans the cache)
      // goes to a throwaway layer, and the machine's own cache is never changed.
      offlineArgs: [
        "--build-arg=NPM_CONFIG_OFFLINE=true",
        `--volume=${join(homedir(), ".npm")}:/root/.npm:O`,
      ],
    },
  ];
}

function files(root: string, path: string): string[] {
  const full = join(root, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full)
    .sort()
    .flatMap((name) => (name === "node_modules" ? [] : files(root, relative(root, join(full, name)))));
}

function sourceHash(root: string, recipe: ImageRecipe, base: string): string {
  const hash = createHash("sha256").update(base);
  for (const path of recipe.inputs.flatMap((p) => files(root, p))) {
    hash.update(`\0${path}\0`).update(readFileSync(join(root, path)));
  }
  return hash.digest("hex").slice(0, 32);
}

/** Removes an image a rebuild left without a tag (a no-op for one still tagged or used by a container). */
export async function forget(id: string): Promise<void> {
  if (id) await podman(["rmi", id]).catch(() => undefined);
}

async function baseId(base: string): Promise<string> {
  return (await podman(["image", "inspect", "--format", "{{.Id}}", base])).trim();
}

/** Builds each image whose inputs changed since it was last built; returns the images built. */
export async function buildImages(options: BuildOptions): Promise<string[]> {
  const built: string[] = [];
  for (const recipe of recipes(options.root)) {
    if (options.only && !options.only.includes(recipe.image)) continue;
    const base = options.base === "offline" ? await recipe.offlineBase(options.say) : null;
    const hash = sourceHash(options.root, recipe, base ? await baseId(base) : "production");
    if ((await imageLabel(recipe.image, SOURCE_LABEL)) === hash) {
      options.say(`${recipe.image} is up to date`);
      continue;
    }
    const started = Date.now();
    const args = [
      "build",
      `--signature-policy=${signaturePolicy()}`,
      `--file=${join(options.root, recipe.dockerfile)}`,
      `--label=${SOURCE_LABEL}=${hash}`,
      `--tag=${recipe.image}`,
    ];
    // Offline, nothing is fetched; and without a network podman adds no iptables chains for the build.
    if (base) args.push("--network=none", `--build-arg=BASE=${base}`, ...recipe.offlineArgs);
    if (recipe.context === ".") {
      args.push(`--ignorefile=${join(options.root, "deploy/dispatcher.Dockerfile.dockerignore")}`);
    }
    const previous = await podman(["image", "inspect", "--format", "{{.Id}}", recipe.image]).catch(() => "");
    await podman([...args, join(options.root, recipe.context)]);
    await forget(previous.trim());
    options.say(`built ${recipe.image} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    built.push(recipe.image);
  }
  return built;
}
