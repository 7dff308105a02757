import * as z from "zod";
import { ErrorResponse } from "./schemas.ts";

/** How a route is described in /openapi.json: the same zod schemas its handler validates with. */
export interface RouteDoc {
  method: "get" | "post" | "put" | "patch" | "delete";
  /** Hono's path syntax: `/workflows/:id`. */
  path: string;
  summary: string;
  /** bearer: Authorization needed; runToken: a run's log-stream token; signed: an X-DWOP-Signature; none: open. */
  auth: "bearer" | "runToken" | "signed" | "none";
  query?: z.ZodObject;
  headers?: { name: string; description: string; required?: boolean }[];
  body?: { contentType: string; schema: z.ZodType }[];
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  /** Error statuses besides 401 and 429 (implied by bearer) and 500; each answers the error body. */
  errors?: number[];
}

const ERROR_TEXT: Record<number, string> = {
  400: "bad request: unreadable body, bad parameter, or workflow errors (each with line and column)",
  401: "missing, malformed, expired or unknown credentials",
  403: "the credentials may not do this",
  404: "no such resource for this caller (another owner's is not found either)",
  409: "conflict with the current state",
  413: "the body is larger than the configured limit",
  415: "unsupported content type",
  422: "the body is well formed but its fields are not valid",
  429: "too many failed authentications from this address: wait Retry-After seconds",
  500: "internal error (details are logged, never returned)",
  503: "a dependency (database, storage) is not available",
};

function jsonSchema(schema: z.ZodType, io: "input" | "output"): object {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" });
  return rest;
}

function parameters(doc: RouteDoc): object[] {
  const path = [...doc.path.matchAll(/:(\w+)/g)].map((m) => ({
    name: m[1],
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  const query = Object.entries(doc.query?.shape ?? {}).map(([name, schema]) => ({
    name,
    in: "query",
    required: !(schema as z.ZodType).safeParse(undefined).success,
    schema: jsonSchema(schema as z.ZodType, "input"),
  }));
  const headers = (doc.headers ?? []).map((h) => ({
    name: h.name,
    in: "header",
    required: h.required ?? false,
    description: h.description,
    schema: { type: "string" },
  }));
  return [...path, ...query, ...headers];
}

function operation(doc: RouteDoc): object {
  const responses: Record<string, object> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    const schema = r.schema ? jsonSchema(r.schema, "output") : { type: "string" };
    responses[status] =
      r.schema || r.contentType
        ? { description: r.description, content: { [r.contentType ?? "application/json"]: { schema } } }
        : { description: r.description };
  }
  const tokened = doc.auth === "bearer" || doc.auth === "runToken";
  const errors = new Set([...(doc.errors ?? []), ...(tokened ? [401, 429] : []), 500]);
  for (const status of [...errors].sort((a, b) => a - b)) {
    responses[String(status)] = {
      description: ERROR_TEXT[status] ?? "error",
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  return {
    summary: doc.summary,
    security: tokened ? [{ [doc.auth]: [] }] : [],
    parameters: parameters(doc),
    ...(doc.body && {
      requestBody: {
        required: true,
        content: Object.fromEntries(
          doc.body.map((b) => [b.contentType, { schema: jsonSchema(b.schema, "input") }]),
        ),
      },
    }),
    responses,
  };
}

/** The OpenAPI 3.1 document of the given routes. */
export function openApiDocument(routes: RouteDoc[]): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const doc of routes) {
    const path = doc.path.replace(/:(\w+)/g, "{$1}");
    (paths[path] ??= {})[doc.method] = operation(doc);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "DWOP API",
      version: "1",
      description:
        "Submit workflows, follow them, read their outputs and logs, and start them from signed webhooks.",
    },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "a Supabase JWT, a DWOP API key, or DWOP_API_TOKEN",
        },
        runToken: {
          type: "http",
          scheme: "bearer",
          description: "one run's log-stream token, which the dispatcher gives that run's worker",
        },
      },
      schemas: { Error: jsonSchema(ErrorResponse, "output") },
    },
    security: [{ bearer: [] }],
    paths,
  };
}
