import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { resolvePython } from "../shared/executors/python.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));

it("passes the Python worker's own unit tests", async () => {
  const python = await resolvePython();
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(python, ["-m", "unittest", "discover", "-s", "worker/tests", "-v"], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", reject);
    child.on("close", (exitCode) => resolve({ code: exitCode, output }));
  });
  if (code !== 0) console.error(output);
  expect(code, "python -m unittest failed; its output is printed above").toBe(0);
}, 180_000);
