import type { Context } from "hono";
import { checkCallbackTarget } from "../shared/net/callback-target.ts";
import { sha256Hex } from "../shared/signature.ts";
import { SubmissionRefused, type SubmitLimits } from "../shared/submit.ts";
import { decodeUtf8, mediaType, readJsonValue, unsupportedMediaType } from "./body.ts";
import type { ApiDeps } from "./context.ts";
import { ApiError, parseWith } from "./errors.ts";
import { SubmitForm, SubmitJson } from "./schemas.ts";

/** A workflow submission, read from either form of `POST /workflows`. */
export interface Submission {
  source: string;
  /** The workflow's file name: shown in DSL errors, and the workflow's name without `.workflow`. */
  file: string;
  requirements: string | null;
  inputs: Record<string, Uint8Array | string>;
  callbackUrl: string | null;
  callbackSecret: string | null;
  /** The priority of tasks without @priority (issue 14); null: 0. */
  priority: number | null;
}

const INPUT_FIELD = "inputs.";
const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The uploaded workflow file's name names the workflow and shows in its errors: a file name, not a blob. */
const MAX_FILE_NAME = 255;
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Reads `multipart/form-data` (as `curl -F` sends) or `application/json`; 415 for anything else. A
 * workflow file over the size limit and inputs over their count are refused before they are decoded.
 */
export async function readSubmission(c: Context, limits: SubmitLimits): Promise<Submission> {
  const type = mediaType(c);
  if (type === "multipart/form-data") return fromForm(c, limits);
  if (type === "application/json") {
    const body = parseWith(SubmitJson, await readJsonValue(c), 422, "submission");
    return {
      source: body.workflow,
      file: `${body.name ?? "workflow"}.workflow`,
      requirements: body.requirements ?? null,
      inputs: body.inputs ?? {},
      callbackUrl: body.callback_url ?? null,
      callbackSecret: body.callback_secret ?? null,
      priority: body.priority ?? null,
    };
  }
  throw unsupportedMediaType(["multipart/form-data", "application/json"]);
}

async function fromForm(c: Context, limits: SubmitLimits): Promise<Submission> {
  let form: FormData;
  try {
    form = await c.req.raw.formData();
  } catch {
    throw new ApiError(400, "bad_request", "the body is not valid multipart/form-data");
  }
  // No prototype: a field named `inputs.__proto__` or `constructor` is data like any other.
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  const inputs: Record<string, Uint8Array | string> = Object.create(null) as Record<string, Uint8Array>;
  const problems: { path: string; message: string }[] = [];
  const seen = new Set<string>();
  let file = "workflow.workflow";
  // The form is read whole already: counted first, so that the refusal says how many there were.
  const inputCount = [...form.keys()].filter((key) => key.startsWith(INPUT_FIELD)).length;
  if (inputCount > limits.maxInputs) throw tooManyInputs(limits, inputCount);
  for (const [key, value] of form.entries()) {
    if (key === "workflow" && typeof value !== "string" && value.size > limits.maxWorkflowBytes) {
      const message = `the workflow file is larger than ${limits.maxWorkflowBytes} bytes`;
      throw new SubmissionRefused("workflow_too_large", message, { limit: limits.maxWorkflowBytes });
    }
    if (seen.has(key)) {
      problems.push({ path: key, message: "given more than once" });
    } else if (key.startsWith(INPUT_FIELD)) {
      const name = key.slice(INPUT_FIELD.length);
      if (!INPUT_NAME.test(name))
        problems.push({ path: key, message: "an input name is a letter or _ then letters, digits, _" });
      inputs[name] = typeof value === "string" ? value : new Uint8Array(await value.arrayBuffer());
    } else if (!Object.hasOwn(SubmitForm.shape, key)) {
      problems.push({ path: key, message: "unknown field" });
    } else {
      fields[key] =
        typeof value === "string" ? value : decodeUtf8(await value.arrayBuffer(), `the ${key} file`);
      if (key === "workflow" && typeof value !== "string" && value.name) file = value.name;
    }
    seen.add(key);
  }
  if (file.length > MAX_FILE_NAME || CONTROL.test(file)) {
    const message = `the workflow's file name must be at most ${MAX_FILE_NAME} characters, without control characters`;
    problems.push({ path: "workflow", message });
  }
  if (problems.length > 0) throw new ApiError(422, "invalid_request", "invalid submission", problems);
  const body = parseWith(SubmitForm, fields, 422, "submission");
  return {
    source: body.workflow,
    file,
    requirements: body.requirements ?? null,
    inputs,
    callbackUrl: body.callback_url ?? null,
    callbackSecret: body.callback_secret ?? null,
    priority: body.priority ?? null,
  };
}

/** As checkSubmission refuses the JSON form's inputs. */
function tooManyInputs(limits: SubmitLimits, inputs: number): SubmissionRefused {
  const message = `${inputs} inputs given; a workflow may have at most ${limits.maxInputs}`;
  return new SubmissionRefused("too_many_inputs", message, { limit: limits.maxInputs, inputs });
}

/**
 * Refuses (422) a callback URL whose host is, or resolves to, an address callbacks may not reach. Where
 * the runtime cannot resolve names (workerd), a name passes here; the sender checks it again anyway.
 */
export async function checkCallbackUrl(url: string, deps: ApiDeps): Promise<void> {
  await checkCallbackTarget(url, deps.settings.callbackAllow, deps.resolveHost, { requireResolved: false });
}

/** What makes two submissions the same request for an Idempotency-Key (the callback secret aside). */
export async function requestHash(s: Submission): Promise<string> {
  const names = Object.keys(s.inputs).sort();
  const inputs = await Promise.all(names.map(async (name) => [name, await sha256Hex(s.inputs[name]!)]));
  // A priority joins the hash only when given, so hashes of submissions without one stay as they were.
  const priority = s.priority === null ? [] : [s.priority];
  return sha256Hex(JSON.stringify([s.file, s.source, s.requirements, inputs, s.callbackUrl, ...priority]));
}

/** The Idempotency-Key header: null when absent, 400 when it is not 1 to 255 visible ASCII characters. */
export function idempotencyKey(c: Context): string | null {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return null;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ApiError(400, "bad_request", "Idempotency-Key must be 1 to 255 visible ASCII characters");
  }
  return key;
}
