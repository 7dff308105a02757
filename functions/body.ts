import type { Context } from "hono";
import type * as z from "zod";
import type { Storage } from "../shared/storage/storage.ts";
import { ApiError, notFound, parseWith } from "./errors.ts";

/** The media type of a request, lowercased, without parameters; "" when there is none. */
export function mediaType(c: Context): string {
  return (c.req.header("content-type") ?? "").split(";", 1)[0]!.trim().toLowerCase();
}

export function unsupportedMediaType(accepted: string[]): ApiError {
  return new ApiError(415, "unsupported_media_type", `send the body as ${accepted.join(" or ")}`, {
    accepted,
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Bytes as UTF-8 text, or a 400 naming `what`: decoding with replacement characters would store text the
 * client never sent (a latin1 workflow file whose `é` became U+FFFD, for instance).
 */
export function decodeUtf8(bytes: ArrayBuffer | Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ApiError(400, "bad_request", `${what} is not valid UTF-8`);
  }
}

/** Any JSON value of an application/json body: 415 for another type, 400 when it does not parse. */
export async function readJsonValue(c: Context): Promise<unknown> {
  if (mediaType(c) !== "application/json") throw unsupportedMediaType(["application/json"]);
  const text = decodeUtf8(await c.req.arrayBuffer(), "the body");
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "bad_request", "the body is not valid JSON");
  }
}

/** An application/json body validated with `schema` (422 naming every bad field). */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  return parseWith(schema, await readJsonValue(c), 422, "request body");
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A path parameter that must be a UUID; anything else names nothing, so it is a 404. */
export function uuidParam(c: Context, name: string, what: string): string {
  const value = c.req.param(name) ?? "";
  if (!UUID.test(value)) throw notFound(what);
  return value.toLowerCase();
}

const TASK_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** A path parameter that must be a task's name (the DSL's rule); anything else names no task: a 404. */
export function taskNameParam(c: Context, name = "name"): string {
  const value = c.req.param(name) ?? "";
  if (!TASK_NAME.test(value)) throw notFound("task");
  return value;
}

export function needStorage(storage: Storage | null): Storage {
  if (!storage)
    throw new ApiError(503, "storage_unavailable", "no object storage is configured on this server");
  return storage;
}
