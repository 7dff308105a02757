import type { Context } from "hono";
import { parseWorkflow, workflowInputs } from "../shared/dsl/index.ts";
import { sha256Hex } from "../shared/signature.ts";
import { MissingInputError } from "../shared/submit.ts";
import { decodeUtf8, mediaType, readJsonValue, unsupportedMediaType } from "./body.ts";
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
}

const INPUT_FIELD = "inputs.";
const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The uploaded workflow file's name names the workflow and shows in its errors: a file name, not a blob. */
const MAX_FILE_NAME = 255;
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Reads `multipart/form-data` (as `curl -F` sends) or `application/json`; 415 for anything else. */
export async function readSubmission(c: Context): Promise<Submission> {
  const type = mediaType(c);
  if (type === "multipart/form-data") return fromForm(c);
  if (type === "application/json") {
    const body = parseWith(SubmitJson, await readJsonValue(c), 422, "submission");
    return {
      source: body.workflow,
      file: `${body.name ?? "workflow"}.workflow`,
      requirements: body.requirements ?? null,
      inputs: body.inputs ?? {},
      callbackUrl: body.callback_url ?? null,
      callbackSecret: body.callback_secret ?? null,
    };
  }
  throw unsupportedMediaType(["multipart/form-data", "application/json"]);
}

async function fromForm(c: Context): Promise<Submission> {
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
  for (const [key, value] of form.entries()) {
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
  };
}

/** Throws the DSL errors (400) or the missing inputs (422) before anything is stored. */
export function checkWorkflow(source: string, file: string, inputs: Iterable<string>): void {
  const given = new Set(inputs);
  const missing = workflowInputs(parseWorkflow(source, file)).filter((name) => !given.has(name));
  if (missing.length > 0) throw new MissingInputError(missing);
}

/** What makes two submissions the same request for an Idempotency-Key (the callback secret aside). */
export async function requestHash(s: Submission): Promise<string> {
  const names = Object.keys(s.inputs).sort();
  const inputs = await Promise.all(names.map(async (name) => [name, await sha256Hex(s.inputs[name]!)]));
  return sha256Hex(JSON.stringify([s.file, s.source, s.requirements, inputs, s.callbackUrl]));
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
