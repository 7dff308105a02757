import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onTestFinished } from "vitest";

/**
 * A new folder in the system's temporary folder for the running test (call it inside the test): removed
 * when the test passes, kept as evidence when it fails. A full run of the suite used to leave a hundred.
 */
export async function testFolder(prefix: string): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), prefix));
  onTestFinished(async ({ task }) => {
    if (task.result?.state === "pass") await rm(folder, { recursive: true, force: true }).catch(() => {});
  });
  return folder;
}
