// The shortened chaos soak (test/chaos.test.ts) on pg-boss, the bus `dwop run` uses when there is no
// RabbitMQ: the queue is in the stack's own database, so each backend terminated and each refusal of
// connections is the bus's fault too. In a file of its own, to run beside the RabbitMQ soaks.
import { expect, it } from "vitest";
import { soak } from "./support/chaos-soak.ts";

it("local executor on pg-boss: every invariant holds after the faults", async () => {
  const { report, text } = await soak("local", 40_000, "pgboss");
  expect(report.violations, text).toBe(0);
  expect(report.settleMs, text).not.toBeNull();
  expect(report.faults.rabbit_close ?? 0).toBe(0);
  expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(3);
  expect(report.succeededTasks).toBeGreaterThan(0);
}, 130_000);
