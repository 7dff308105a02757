// `npm run chaos -- --minutes 30`: the chaos soak. Prints the seed first, so a failing run can be
// replayed with DWOP_CHAOS_SEED=<seed>; exits 1 on any invariant violation.
import { parseArgs } from "node:util";
import { formatPass } from "./report.ts";
import { runPass, type Executor, type PassReport } from "./run.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    "kube-minutes": { type: "string" },
    executors: { type: "string", default: "local,kubernetes" },
    bus: { type: "string", default: "rabbit" },
    fanout: { type: "string", default: "200" },
    "in-flight": { type: "string", default: "10" },
    "fault-gap": { type: "string", default: "6" },
  },
});
const seed = Number(process.env.DWOP_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const minutes = Number(values.minutes);
const executors = values.executors.split(",") as Executor[];
const kubeMinutes = values["kube-minutes"] ? Number(values["kube-minutes"]) : minutes / 3;
const localMinutes =
  executors.includes("kubernetes") && executors.includes("local") ? minutes - kubeMinutes : minutes;
const brokerRestart = process.env.DWOP_CHAOS_BROKER_RESTART === "1";
if (values.bus !== "rabbit" && values.bus !== "pgboss")
  throw new Error(`--bus is rabbit or pgboss, not ${values.bus}`);
const bus = values.bus;
const say = (line: string) => process.stdout.write(`${line}\n`);

say(`# DWOP chaos soak`);
say(`seed ${seed} (replay: DWOP_CHAOS_SEED=${seed} npm run chaos -- ${process.argv.slice(2).join(" ")})`);
say(`bus: ${bus}`);
if (bus === "rabbit")
  say(`broker restarts: ${brokerRestart ? "on" : "off (DWOP_CHAOS_BROKER_RESTART=1 to enable)"}`);
const reports: PassReport[] = [];
for (const executor of executors) {
  const passMinutes = executor === "kubernetes" ? kubeMinutes : localMinutes;
  reports.push(
    await runPass({
      executor,
      bus,
      seed,
      durationMs: passMinutes * 60_000,
      settleTimeoutMs: 180_000,
      meanFaultGapMs: Number(values["fault-gap"]) * 1000,
      maxInFlight: Number(values["in-flight"]),
      fanout: Number(values.fanout),
      brokerRestart,
      say,
    }),
  );
  say(`\n${formatPass(reports.at(-1)!)}\n`);
}
const violations = reports.reduce((n, r) => n + r.violations, 0);
say(`total invariant violations: ${violations}`);
process.exitCode = violations === 0 ? 0 : 1;
