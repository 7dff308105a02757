// The home's lock (cli/home-lock.ts): one holder at a time, waited for while its holder lives, broken
// when its holder is gone, across processes.
import { execFile, spawn } from "node:child_process";
import { readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { lockHolder, takeLock, takeLockNow } from "../cli/home-lock.ts";
import { testFolder } from "./support/test-folder.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** The pid of a process that ran and is gone. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "0"]);
  await new Promise((resolve) => child.once("close", resolve));
  return child.pid!;
}

describe("the home's lock", () => {
  it("has one holder at a time: another take waits until it is released", async () => {
    const path = join(await testFolder("dwop-lock-"), "postgres.lock");
    const held = await takeLock(path, 1_000);
    expect(held).not.toBeNull();
    expect(lockHolder(path)).toBe(process.pid);
    expect(await takeLock(path, 100)).toBeNull();
    expect(takeLockNow(path, 50)).toBeNull();

    const waiting = takeLock(path, 5_000);
    setTimeout(() => held!.release(), 100);
    const next = await waiting;
    expect(next).not.toBeNull();
    next!.release();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it("breaks a lock whose holder is gone, and keeps one whose holder lives", async () => {
    const path = join(await testFolder("dwop-lock-"), "postgres.lock");
    await writeFile(path, `${await deadPid()} x\n`);
    const taken = takeLockNow(path, 1_000);
    expect(taken).not.toBeNull();
    expect(lockHolder(path)).toBe(process.pid);
    taken!.release();

    await writeFile(path, "1 init\n"); // a live process (not this one)
    expect(await takeLock(path, 100)).toBeNull();
    expect(await readFile(path, "utf8")).toBe("1 init\n");
  });

  it("breaks a lock file left without a pid only once it is old", async () => {
    const path = join(await testFolder("dwop-lock-"), "postgres.lock");
    await writeFile(path, ""); // its maker was killed between making it and writing its pid, or is writing it
    expect(await takeLock(path, 100)).toBeNull();
    const old = new Date(Date.now() - 10_000);
    await utimes(path, old, old);
    const taken = await takeLock(path, 1_000);
    expect(taken).not.toBeNull();
    taken!.release();
  });

  it("lets one process at a time in, across processes, and a killed holder's lock goes to the next", async () => {
    const home = await testFolder("dwop-lock-");
    const path = join(home, "postgres.lock");
    const log = join(home, "log");
    const module = JSON.stringify(join(ROOT, "cli/home-lock.ts"));
    const script = join(home, "take.mts");
    // Each process takes the lock 20 times and, while it holds it, appends "in" and "out" to the log: any
    // overlap shows as two "in" in a row.
    await writeFile(
      script,
      `import { appendFileSync } from "node:fs";\n` +
        `const { takeLock } = await import(${module});\n` +
        `for (let i = 0; i < 20; i++) {\n` +
        `  const lock = await takeLock(${JSON.stringify(path)}, 30_000);\n` +
        `  if (!lock) process.exit(4);\n` +
        `  appendFileSync(${JSON.stringify(log)}, "in\\n");\n` +
        `  await new Promise((r) => setTimeout(r, 2));\n` +
        `  appendFileSync(${JSON.stringify(log)}, "out\\n");\n` +
        `  if (process.argv[2] === "die" && i === 2) process.kill(process.pid, "SIGKILL");\n` +
        `  lock.release();\n` +
        `}\n`,
    );
    const take = (arg: string) =>
      run(process.execPath, ["--import", "tsx", script, arg], { cwd: ROOT }).then(
        () => "ok",
        (err: { signal?: string; code?: number }) => err.signal ?? `exit ${err.code}`,
      );
    expect(await Promise.all([take("die"), take("live"), take("live"), take("live")])).toEqual([
      "SIGKILL",
      "ok",
      "ok",
      "ok",
    ]);
    const lines = (await readFile(log, "utf8")).trim().split("\n");
    expect(lines.length).toBe(2 * (3 + 3 * 20));
    expect(lines.every((line, i) => line === (i % 2 === 0 ? "in" : "out"))).toBe(true);
    // The killed process's lock, if the others ended before it died, is still there: broken now.
    const last = await takeLock(path, 1_000);
    expect(last).not.toBeNull();
    last!.release();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
