/** The workflow DSL: `fun name(param:upstream):` blocks in, a validated `WorkflowSpec` out. */
export { parseWorkflow, tryParseWorkflow, type ParseResult } from "./parser.ts";
export { DslError, DslErrors } from "./errors.ts";
export { INPUT_PREFIX, inputRefName, isInputRef, workflowInputs } from "./inputs.ts";
export { MAX_PARAM_NAME, MAX_TASK_NAME, WORKER_FILES } from "./names.ts";
export { toDot, toMermaid } from "./graph-text.ts";
export { countTasks } from "./count.ts";
