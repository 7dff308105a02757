// A dispatcher process as deployed (dispatcher/process.ts: its bus consumer, its SQL, its registration and
// heartbeat) whose executor reports each run a success at once (noop-executor.ts): bench/throughput.ts
// --processes starts some beside `dwop api` and `dwop claimer`, to measure the orchestration alone.
// Run: node --import tsx bench/noop-dispatcher.ts, with a dispatcher's environment.
import { runDispatcher } from "../dispatcher/process.ts";
import { NoopExecutor } from "./noop-executor.ts";

await runDispatcher({ executor: async () => new NoopExecutor() });
