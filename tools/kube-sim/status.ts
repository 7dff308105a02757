/** Status bodies shaped exactly like the API server's (metav1.Status), and the error that carries one. */

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusBody {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

/** A resource as the API names it in messages and Status details. */
export interface Resource {
  /** Plural, as in URLs and `details.kind`: "jobs", "pods". */
  plural: string;
  /** API group; "" for the core group. */
  group: string;
  /** Kind, as in `Job.batch "x" is invalid`. */
  kind: string;
}

export const JOBS: Resource = { plural: "jobs", group: "batch", kind: "Job" };
export const PODS: Resource = { plural: "pods", group: "", kind: "Pod" };

/** A failed request: the HTTP status is `status.code`. */
export class ApiError extends Error {
  constructor(
    readonly status: StatusBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(status.message);
  }
}

function qualified(r: Resource): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

function details(r: Resource, name: string): NonNullable<StatusBody["details"]> {
  return r.group ? { name, group: r.group, kind: r.plural } : { name, kind: r.plural };
}

export function failure(
  code: number,
  reason: string,
  message: string,
  extra?: StatusBody["details"],
): StatusBody {
  // Field order as the API server writes it: details before code.
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(extra ? { details: extra } : {}),
    code,
  };
}

export function notFound(r: Resource, name: string): ApiError {
  return new ApiError(failure(404, "NotFound", `${qualified(r)} "${name}" not found`, details(r, name)));
}

export function alreadyExists(r: Resource, name: string): ApiError {
  return new ApiError(
    failure(409, "AlreadyExists", `${qualified(r)} "${name}" already exists`, details(r, name)),
  );
}

export function invalid(r: Resource, name: string, causes: StatusCause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(", ")}]`;
  const kindName = r.group ? `${r.kind}.${r.group}` : r.kind;
  return new ApiError(
    failure(422, "Invalid", `${kindName} "${name}" is invalid: ${summary}`, {
      ...details(r, name),
      kind: r.kind,
      causes,
    }),
  );
}

export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, "BadRequest", message));
}

/** The watch cache's answer to a resourceVersion older than its history. */
export function expired(requested: number, oldest: number): StatusBody {
  return failure(410, "Expired", `too old resource version: ${requested} (${oldest})`);
}

export function success(r: Resource, name: string, uid: string): StatusBody {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { ...details(r, name), uid },
    code: 200,
  };
}

const REASON_BY_CODE: Record<number, string> = {
  401: "Unauthorized",
  403: "Forbidden",
  405: "MethodNotAllowed",
  410: "Gone",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** The Status an injected fault answers with, shaped as the API server's own for that code. */
export function forCode(code: number, message?: string, retryAfterSeconds?: number): StatusBody {
  const reason = REASON_BY_CODE[code] ?? "InternalError";
  return failure(
    code,
    reason,
    message ?? defaultMessage(code),
    retryAfterSeconds === undefined ? undefined : { retryAfterSeconds },
  );
}

function defaultMessage(code: number): string {
  switch (code) {
    case 429:
      return "Too many requests, please try again later.";
    case 503:
      return "The server is currently unable to handle the request";
    case 401:
      return "Unauthorized";
    default:
      return "Internal error occurred: injected by kube-sim";
  }
}
