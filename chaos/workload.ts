// The workflows the soak submits. Every body is deterministic, so each task's output is known in advance.
import { join } from "node:path";
import type { Rng } from "./rng.ts";

export type Shape =
  "chain" | "diamond" | "fanout" | "fails" | "flaky" | "timeout" | "cancel" | "retry" | "blob";

/** What a workflow must end as, and each task that must succeed with its exact output. */
export interface Expectation {
  /** Final states allowed (a cancel that came after the end leaves it succeeded). */
  status: ("succeeded" | "failed" | "cancelled")[];
  /** Outputs of tasks that must succeed; checked for every task that did succeed. */
  outputs: Record<string, string>;
  /** Tasks that must end failed, with the failure reason their last run must carry. */
  failed: Record<string, string>;
}

export interface PlannedWorkflow {
  key: string;
  shape: Shape;
  source: string;
  expect: Expectation;
  /** cancel: ms after submit to cancel. */
  cancelAfterMs?: number;
  /** retry: the marker file that "fixes" the task before the retry from failure. */
  fixMarker?: string;
}

const SLEEP = "import time; time.sleep(0.2)";

export interface WorkloadOptions {
  /** Folder tasks may write attempt markers to. */
  markerDir: string;
  /** Width of the wide fan-out (200 in the long soak). */
  fanout: number;
}

/** The next workflow of the stream, chosen by the seeded generator. */
export function planWorkflow(rng: Rng, index: number, o: WorkloadOptions): PlannedWorkflow {
  const shape = rng.weighted<Shape>({
    chain: 4,
    diamond: 3,
    fanout: 1,
    fails: 1,
    flaky: 2,
    timeout: 1,
    cancel: 1,
    retry: 1,
    blob: 1,
  });
  const key = `w${String(index).padStart(4, "0")}_${shape}`;
  switch (shape) {
    case "chain":
      return chain(key, rng.int(3, 8), rng.int(1, 99));
    case "diamond":
      return diamond(key, rng.int(2, 9));
    case "fanout":
      return fanout(key, o.fanout);
    case "fails":
      return fails(key, rng.int(0, 2));
    case "flaky":
      return flaky(key);
    case "timeout":
      return timeout(key);
    case "cancel":
      return { ...cancel(key), cancelAfterMs: rng.int(300, 4000) };
    case "retry":
      return retry(key, join(o.markerDir, `${key}.fixed`));
    case "blob":
      return blob(key, rng.int(1, 4));
  }
}

const ok = (outputs: Record<string, string>): Expectation => ({ status: ["succeeded"], outputs, failed: {} });

function chain(key: string, length: number, start: number): PlannedWorkflow {
  const tasks: string[] = [];
  const outputs: Record<string, string> = {};
  for (let i = 0; i < length; i++) {
    tasks.push(
      i === 0
        ? `fun t0():\n    ${SLEEP}\n    print(${start})\n`
        : `fun t${i}(x:t${i - 1}):\n    ${SLEEP}\n    print(int(open("x").read()) + 1)\n`,
    );
    outputs[`t${i}`] = `${start + i}\n`;
  }
  return { key, shape: "chain", source: tasks.join("\n"), expect: ok(outputs) };
}

function diamond(key: string, n: number): PlannedWorkflow {
  const source = [
    `fun top():\n    ${SLEEP}\n    print(${n})\n`,
    `fun left(x:top):\n    print(int(open("x").read()) * 2)\n`,
    `fun right(x:top):\n    ${SLEEP}\n    print(int(open("x").read()) * 3)\n`,
    `fun bottom(l:left, r:right):\n    print(int(open("l").read()) + int(open("r").read()))\n`,
  ].join("\n");
  return {
    key,
    shape: "diamond",
    source,
    expect: ok({ top: `${n}\n`, left: `${2 * n}\n`, right: `${3 * n}\n`, bottom: `${5 * n}\n` }),
  };
}

function fanout(key: string, width: number): PlannedWorkflow {
  const outputs: Record<string, string> = { root: "3\n" };
  const tasks = ["fun root():\n    print(3)\n"];
  for (let i = 0; i < width; i++) {
    tasks.push(`fun m${i}(x:root):\n    print(int(open("x").read()) * ${i})\n`);
    outputs[`m${i}`] = `${3 * i}\n`;
  }
  const params = Array.from({ length: width }, (_, i) => `p${i}:m${i}`).join(", ");
  const sum = Array.from({ length: width }, (_, i) => 3 * i).reduce((a, b) => a + b, 0);
  tasks.push(`fun sink(${params}):\n    print(sum(int(open("p%d" % i).read()) for i in range(${width})))\n`);
  outputs.sink = `${sum}\n`;
  return { key, shape: "fanout", source: tasks.join("\n"), expect: ok(outputs) };
}

function fails(key: string, retries: number): PlannedWorkflow {
  const source = [
    "fun first():\n    print('fine')\n",
    `@retries(${retries})\nfun boom(x:first):\n    print("about to fail")\n    raise SystemExit(3)\n`,
    "fun after(x:boom):\n    print('never')\n",
  ].join("\n");
  return {
    key,
    shape: "fails",
    source,
    expect: { status: ["failed"], outputs: { first: "fine\n" }, failed: { boom: "exit_code" } },
  };
}

/** Fails on its first attempt (DWOP_ATTEMPT: a task sees no folder of the soak's to keep a marker in). */
function flaky(key: string): PlannedWorkflow {
  const source = [
    `@retries(2)\nfun flaky():\n    import os\n` +
      `    if os.environ["DWOP_ATTEMPT"] == "1":\n        print("first attempt fails")\n        raise SystemExit(1)\n` +
      `    print("recovered")\n`,
    `fun use(x:flaky):\n    print(open("x").read().strip() + "!")\n`,
  ].join("\n");
  return { key, shape: "flaky", source, expect: ok({ flaky: "recovered\n", use: "recovered!\n" }) };
}

function timeout(key: string): PlannedWorkflow {
  // Long enough for the body to start and print on a loaded machine, so the failure has a log tail.
  const source = `@timeout(4)\nfun sleepy():\n    import time\n    print("sleeping", flush=True)\n    time.sleep(60)\n    print("woke")\n`;
  return {
    key,
    shape: "timeout",
    source,
    expect: { status: ["failed"], outputs: {}, failed: { sleepy: "timeout" } },
  };
}

function cancel(key: string): PlannedWorkflow {
  const c = chain(key, 5, 40);
  const slow = c.source.replaceAll(SLEEP, "import time; time.sleep(1)");
  return {
    ...c,
    shape: "cancel",
    source: slow,
    expect: { status: ["cancelled", "succeeded"], outputs: c.expect.outputs, failed: {} },
  };
}

/** Fails until the soak writes its marker (the "fix"), then is retried from the failure. */
function retry(key: string, marker: string): PlannedWorkflow {
  const source = [
    "fun prepare():\n    print(21)\n",
    `fun fragile(x:prepare):\n    import os\n    if not os.path.exists(${JSON.stringify(marker)}):\n        print("not fixed yet")\n        raise SystemExit(4)\n    print(int(open("x").read()) * 2)\n`,
  ].join("\n");
  return { key, shape: "retry", source, expect: ok({ prepare: "21\n", fragile: "42\n" }), fixMarker: marker };
}

/** Big outputs (megabytes), so a worker killed at random is often killed while uploading. */
function blob(key: string, megabytes: number): PlannedWorkflow {
  const line = "x".repeat(1023);
  const source = [
    `fun big():\n    import sys\n    sys.stdout.write(("${line}\\n") * ${megabytes * 1024})\n`,
    `fun size(b:big):\n    import os\n    print(os.path.getsize("b"))\n`,
  ].join("\n");
  return {
    key,
    shape: "blob",
    source,
    expect: ok({ big: `${line}\n`.repeat(megabytes * 1024), size: `${megabytes * 1024 * 1024}\n` }),
  };
}
