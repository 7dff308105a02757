import { quote } from "./errors.ts";
import { INPUT_PREFIX, isInputRef } from "./inputs.ts";

/** Task names become parts of Kubernetes Job names and storage paths, hence the DNS-label length. */
export const MAX_TASK_NAME = 63;
export const MAX_PARAM_NAME = 100;

/** Files the worker itself writes in a task's folder; a parameter (an input file) must not replace them. */
export const WORKER_FILES: readonly string[] = ["main.py", "requirements.txt"];

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
// No '/', no leading '.' or '-': a parameter name is a plain file name inside the task's folder, never a
// path, a hidden file, '.', '..' or something a shell tool could read as an option.
const SAFE_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const PYTHON_KEYWORDS = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
  "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
  "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
]); // prettier-ignore

export function isIdentifier(text: string): boolean {
  return IDENTIFIER.test(text);
}

/** Why `name` cannot name a task, or null when it can. */
export function taskNameProblem(name: string): string | null {
  if (!isIdentifier(name)) {
    return `invalid task name ${quote(name)}: use letters, digits and '_', not starting with a digit`;
  }
  if (PYTHON_KEYWORDS.has(name)) return `task name ${quote(name)} is a Python keyword`;
  if (name === "inputs")
    return "'inputs' cannot name a task: it is reserved for workflow inputs (inputs.NAME)";
  if (name.length > MAX_TASK_NAME) {
    return `task name is ${name.length} characters long; the limit is ${MAX_TASK_NAME}`;
  }
  return null;
}

/** Why `name` is not a safe file name for a parameter, or null when it is. */
export function paramNameProblem(name: string): string | null {
  if (!SAFE_FILE_NAME.test(name)) {
    return (
      `unsafe parameter name ${quote(name)}: a parameter names a file, so use letters, digits, ` +
      "'_', '.' and '-', not starting with '.' or '-'"
    );
  }
  if (name.length > MAX_PARAM_NAME) {
    return `parameter name is ${name.length} characters long; the limit is ${MAX_PARAM_NAME}`;
  }
  // Case-insensitive: on macOS the local executor's folders usually are.
  if (WORKER_FILES.includes(name.toLowerCase())) {
    return `parameter name ${quote(name)} is a file the worker itself writes; choose another name`;
  }
  return null;
}

/** Why `upstream` can be neither a task name nor `inputs.NAME`, or null when its shape is fine. */
export function upstreamProblem(upstream: string): string | null {
  if (upstream === "inputs") return "'inputs' needs a name: write inputs.NAME, e.g. inputs.payload";
  if (upstream.startsWith(INPUT_PREFIX)) {
    if (isInputRef(upstream)) return null;
    return `invalid input ${quote(upstream)}: an input name uses letters, digits and '_', not starting with a digit`;
  }
  if (isIdentifier(upstream)) return null;
  return `invalid upstream ${quote(upstream)}: write a task name or inputs.NAME`;
}
