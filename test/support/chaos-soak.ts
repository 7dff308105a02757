import type { ChaosBus } from "../../chaos/faults.ts";
import { formatPass } from "../../chaos/report.ts";
import { runPass, type Executor } from "../../chaos/run.ts";

/** The test suite's soaks' seed: a failure replays with the same faults at the same moments. */
export const SEED = 1126;

/** A shortened soak under SEED's faults; its report, and the report as text (printed on a violation). */
export async function soak(executor: Executor, durationMs: number, bus: ChaosBus = "rabbit") {
  const report = await runPass({
    executor,
    bus,
    seed: SEED,
    durationMs,
    settleTimeoutMs: 60_000,
    meanFaultGapMs: 5000,
    maxInFlight: 5,
    fanout: 20,
    brokerRestart: false, // never in the test suite: other suites share the broker
    say: () => {},
  });
  const text = formatPass(report);
  if (report.violations > 0) console.error(text);
  return { report, text };
}
