import { execFile } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { testFolder } from "./support/test-folder.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

interface Call {
  at: number;
  name: string;
  args: string;
  result: number;
}

describe("LocalStorage on the disk", () => {
  // A dispatcher records a success, in a transaction that waits for the disk, once the output is stored:
  // a machine that stops right after must find the output whole. So each way of writing an object flushes
  // its bytes before the rename that names it, then the folder that holds its name; and the name of each
  // folder made for it (its parent) once made, all before the put returns, as does a put into a folder
  // another put is making. Seen from the system calls (strace) of a process storing five.
  it("flushes an object's bytes before it is named, and its name before the put returns", async () => {
    const root = await testFolder("dwop-durable-");
    const trace = join(root, "trace");
    const storage = join(root, "storage");
    // A file per thread (-ff: the flushes run in libuv's pool), each call with its time, merged in order.
    await run("strace", [
      ...[
        "-ff",
        "-ttt",
        "-qq",
        "-o",
        trace,
        "-e",
        "trace=openat,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,access,faccessat,faccessat2",
      ],
      ...[process.execPath, "--import", "tsx", join(ROOT, "test/support/store-objects.ts"), storage],
    ]);
    const files = (await readdir(root)).filter((f) => f.startsWith("trace."));
    const lines = (await Promise.all(files.map((f) => readFile(join(root, f), "utf8")))).join("\n");
    const calls = lines
      .split("\n")
      .map((line) => /^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)/.exec(line))
      .filter((m) => m !== null)
      .map((m): Call => ({ at: Number(m[1]), name: m[2]!, args: m[3]!, result: Number(m[4]) }))
      .sort((x, y) => x.at - y.at);
    const synced = (path: string, from: number, to = calls.length) => {
      // An fsync (or fdatasync) of a descriptor opened on `path`, between calls `from` and `to`.
      for (let i = from; i < to; i++) {
        const c = calls[i]!;
        if (c.name !== "openat" || !c.args.includes(`"${path}"`)) continue;
        const j = calls.findIndex(
          (d, k) => k > i && k < to && /^f(data)?sync$/.test(d.name) && d.args === String(c.result),
        );
        if (j >= 0) return true;
      }
      return false;
    };
    const folder = join(storage, "Task_Output", "wf");
    const returned = (name: string) => {
      // The storing process looks for `returned-<name>` once that put has returned.
      const at = calls.findIndex((c) => /access/.test(c.name) && c.args.includes(`returned-${name}"`));
      expect(at, `${name}'s put returned`).toBeGreaterThan(0);
      return at;
    };
    const objects = [
      ["small", "small/output.txt"],
      ["large", "large/output.txt"],
      ["streamed", "streamed/output.txt"],
      ["first", "pair/output.txt"],
      ["second", "pair/attempt-1.log"],
    ] as const;
    for (const [name, path] of objects) {
      const object = join(folder, path);
      const renamed = calls.findIndex(
        (c) => c.name.startsWith("rename") && c.args.endsWith(`"${object}"`) && c.result === 0,
      );
      expect(renamed, `${name} renamed into place`).toBeGreaterThan(0);
      const temp = /"([^"]+\.part)"/.exec(calls[renamed]!.args)![1]!;
      expect(synced(temp, 0, renamed), `${name}'s bytes flushed before its rename`).toBe(true);
      expect(
        synced(dirname(object), renamed, returned(name)),
        `${name}'s folder flushed after its rename, before its put returned`,
      ).toBe(true);
    }
    // The folders made for the objects: each one's parent flushed once it is made, before the put that made
    // it returned (that the second put of the pair, which found its folder made, waits for that flush too
    // is the next test's: here the flush is over before it could matter).
    for (const [made, by] of [
      [join(storage, "Task_Output"), "small"],
      [folder, "small"],
      ...["small", "large", "streamed"].map((n) => [join(folder, n), n]),
      [join(folder, "pair"), "first"],
    ] as const) {
      const at = calls.findIndex(
        (c) => c.name.startsWith("mkdir") && c.args.includes(`"${made}"`) && c.result === 0,
      );
      expect(at, `${made} made`).toBeGreaterThanOrEqual(0);
      expect(synced(dirname(made), at, returned(by)), `${made}'s name flushed before ${by} returned`).toBe(
        true,
      );
    }
  }, 60_000);

  // The dispatcher stores a run's output and log at once: the first put makes their folder, and the second,
  // finding it made, must not return before the folder's name is on the disk either (it would record a
  // success whose output a machine stopping then would not have). strace holds that one flush (an fsync of
  // the folder's parent, the only call traced: -P) for 0.4 s: the second put may return only after.
  it("returns a put into a folder another put made only once that folder's name is flushed", async () => {
    const HELD_US = 400_000;
    const root = await testFolder("dwop-durable-pair-");
    const storage = join(root, "storage");
    const parent = join(storage, "Task_Output", "wf"); // where the folder is named
    await mkdir(parent, { recursive: true });
    const { stdout, stderr } = await run("strace", [
      ...["-f", "-qq", "-ttt", "-P", parent, "-e", "trace=fsync"],
      ...["-e", `inject=fsync:delay_exit=${HELD_US}`],
      ...[process.execPath, "--import", "tsx", join(ROOT, "test/support/store-pair.ts"), storage],
    ]);
    const held = [...stderr.matchAll(/(\d+\.\d+) fsync\(\d+\) = 0 \(DELAYED\)/g)].map((m) => Number(m[1]));
    expect(held, `one flush of ${parent} held:\n${stderr}`).toHaveLength(1);
    const returned = (name: string) => Number(new RegExp(`^${name} (\\d+\\.\\d+)$`, "m").exec(stdout)?.[1]);
    for (const name of ["first", "second"]) {
      expect(
        returned(name),
        `${name} returned after the held flush ended:\n${stdout}`,
      ).toBeGreaterThanOrEqual(held[0]! + HELD_US / 1e6);
    }
  }, 60_000);
});
