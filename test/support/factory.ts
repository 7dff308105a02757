import { randomUUID } from "node:crypto";
import { DEFAULT_TASK_OPTIONS, type TaskOptions, type TaskSpec } from "../../shared/model.ts";
import type { SubmitInput } from "../../shared/db/store.ts";
import { codeBundle } from "../../shared/submit.ts";

/** A task with consistent defaults: `task("b", ["a"])` depends on a, reading it from a file named `a`. */
export function task(name: string, upstreams: string[] = [], options: Partial<TaskOptions> = {}): TaskSpec {
  return {
    name,
    params: upstreams.map((u) => ({ name: u.replace(/^inputs\./, "in_"), upstream: u })),
    body: `print(${JSON.stringify(name)})\n`,
    options: { ...DEFAULT_TASK_OPTIONS, ...options },
    line: 1,
  };
}

/** A submission of the given tasks under a fresh id. */
export function submission(tasks: TaskSpec[], overrides: Partial<SubmitInput> = {}): SubmitInput {
  return {
    id: randomUUID(),
    owner: "test",
    name: "test-workflow",
    source: tasks.map((t) => `fun ${t.name}():\n    pass\n`).join("\n"),
    hasRequirements: false,
    inputs: [],
    tasks,
    code: codeBundle("test.workflow", tasks).ranges,
    retryBackoffMs: 0,
    ...overrides,
  };
}
