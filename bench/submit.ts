// Submitting a 10,000-task workflow: parse + validate, upload each task's code, one SQL transaction.
// Run: npx tsx bench/submit.ts [--tasks=10000]
import { randomUUID } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseWorkflow } from "../shared/dsl/index.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import { submitWorkflow } from "../shared/submit.ts";
import { migratedDatabase } from "../test/support/migrated.ts";
import { fanWorkflow } from "./stats.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 10000);
const m = await migratedDatabase("bench_submit");
const storage = new LocalStorage({
  root: await mkdtemp(join(tmpdir(), "dwop-bench-")),
  secret: "bench-secret-0123456789",
});
const source = fanWorkflow(n - 2);
try {
  for (let round = 1; round <= 3; round++) {
    const t0 = performance.now();
    const spec = parseWorkflow(source, "big.workflow");
    const t1 = performance.now();
    const r = await submitWorkflow(
      { store: m.store, storage },
      { source, file: "big.workflow", owner: "bench", id: randomUUID(), retryBackoffMs: 1000 },
    );
    const t2 = performance.now();
    console.log(
      `round ${round}: ${spec.tasks.length} tasks submitted in ${(t2 - t0).toFixed(0)} ms ` +
        `(parse ${(t1 - t0).toFixed(0)} ms; parse again + upload + SQL ${(t2 - t1).toFixed(0)} ms; created ${r.created})`,
    );
  }
} finally {
  await m.close(true);
}
process.exit(0);
