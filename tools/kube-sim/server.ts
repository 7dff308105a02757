/**
 * The HTTP face of the simulator: routes the Job, Pod and pod-log endpoints of the Kubernetes API,
 * checks the bearer token, applies injected latency and failures, and counts requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Faults } from "./faults.ts";
import type { JobController, PropagationPolicy } from "./jobs.ts";
import type { Kubelet } from "./kubelet.ts";
import { servePodLog } from "./log-route.ts";
import { selectorFor } from "./selectors.ts";
import type { Stats } from "./stats.ts";
import { ApiError, JOBS, PODS, badRequest, failure, forCode, notFound, type Resource } from "./status.ts";
import type { ObjectStore } from "./store.ts";
import type { Job, Kind, KubeObject, Pod } from "./types.ts";
import type { WatchHub } from "./watch.ts";

export interface ServerParts {
  store: ObjectStore;
  jobs: JobController;
  kubelet: Kubelet;
  watches: WatchHub;
  faults: Faults;
  stats: Stats;
  token: string;
}

interface Route {
  resource: Resource;
  kind: Kind;
  /** Undefined for the cluster-wide lists (/api/v1/pods, /apis/batch/v1/jobs). */
  namespace: string | undefined;
  name: string | undefined;
  sub: "log" | "status" | undefined;
}

const PATTERNS: [RegExp, Resource, Kind][] = [
  [/^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+)(?:\/(status))?)?$/, JOBS, "Job"],
  [/^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)(?:\/(log|status))?)?$/, PODS, "Pod"],
  [/^\/apis\/batch\/v1\/(jobs)$/, JOBS, "Job"],
  [/^\/api\/v1\/(pods)$/, PODS, "Pod"],
];

function parseRoute(pathname: string): Route | undefined {
  for (const [re, resource, kind] of PATTERNS) {
    const m = re.exec(pathname);
    if (!m) continue;
    const clusterWide = m[1] === resource.plural;
    const decode = (s: string | undefined) => (s === undefined ? undefined : decodeURIComponent(s));
    return {
      resource,
      kind,
      namespace: clusterWide ? undefined : decode(m[1]),
      name: clusterWide ? undefined : decode(m[2]),
      sub: m[3] as Route["sub"],
    };
  }
  return undefined;
}

/** The API's verb for a request: what RBAC and the API server's metrics call it. */
function verbOf(method: string, route: Route | undefined, query: URLSearchParams): string {
  const watch = query.get("watch") === "true" || query.get("watch") === "1";
  switch (method) {
    case "GET":
      return route?.name ? "get" : watch ? "watch" : "list";
    case "POST":
      return "create";
    case "DELETE":
      return route?.name ? "delete" : "deletecollection";
    case "PUT":
      return "update";
    default:
      return method.toLowerCase();
  }
}

function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`the body of the request was in an unknown format: ${(err as Error).message}`);
  }
}

const JOB_ORPHAN_WARNING =
  '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"';

interface DeleteOptions {
  propagationPolicy?: string;
  orphanDependents?: boolean;
  gracePeriodSeconds?: number;
}

function deleteOptions(
  query: URLSearchParams,
  body: unknown,
): { policy: PropagationPolicy | undefined; grace: number | undefined } {
  const opts = (body && typeof body === "object" ? body : {}) as DeleteOptions;
  const policy = query.get("propagationPolicy") ?? opts.propagationPolicy;
  const orphan = query.get("orphanDependents") ?? opts.orphanDependents;
  const graceText = query.get("gracePeriodSeconds") ?? opts.gracePeriodSeconds;
  const grace = graceText === undefined || graceText === null ? undefined : Number(graceText);
  if (policy !== undefined && policy !== "Orphan" && policy !== "Background" && policy !== "Foreground") {
    throw badRequest(
      `Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`,
    );
  }
  if (policy) return { policy, grace };
  if (orphan !== undefined && orphan !== null)
    return { policy: String(orphan) === "true" ? "Orphan" : "Background", grace };
  return { policy: undefined, grace };
}

/** The list body: items in key order without kind/apiVersion, paged by `limit` and `continue`. */
function listBody(store: ObjectStore, route: Route, query: URLSearchParams): unknown {
  const selector = selectorFor(query, route.kind);
  let items: KubeObject[] = store.list(route.kind, route.namespace, selector);
  const keyOf = (o: KubeObject) => `${o.metadata.namespace}/${o.metadata.name}`;
  let rv = String(store.resourceVersion);
  const token = query.get("continue");
  if (token) {
    let parsed: { rv: string; after: string };
    try {
      parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { rv: string; after: string };
    } catch {
      throw badRequest("continue key is not valid: invalid token");
    }
    rv = parsed.rv;
    items = items.filter((o) => keyOf(o) > parsed.after);
  }
  const metadata: Record<string, unknown> = { resourceVersion: rv };
  const limit = Number(query.get("limit") ?? "0");
  if (limit > 0 && items.length > limit) {
    metadata.remainingItemCount = items.length - limit;
    items = items.slice(0, limit);
    metadata.continue = Buffer.from(JSON.stringify({ rv, after: keyOf(items[items.length - 1]!) })).toString(
      "base64url",
    );
  }
  const apiVersion = route.kind === "Job" ? "batch/v1" : "v1";
  return {
    kind: `${route.kind}List`,
    apiVersion,
    metadata,
    items: items.map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest),
  };
}

export class ApiServer {
  readonly http: Server;

  constructor(private readonly parts: ServerParts) {
    this.http = createServer((req, res) => void this.handle(req, res));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { faults, stats } = this.parts;
    const url = new URL(req.url ?? "/", "http://kube-sim");
    const method = req.method ?? "GET";
    const route = parseRoute(url.pathname);
    const resource = route ? route.resource.plural + (route.sub ? `/${route.sub}` : "") : url.pathname;
    stats.request(verbOf(method, route, url.searchParams), resource);
    try {
      if (req.headers.authorization !== `Bearer ${this.parts.token}`) throw new ApiError(forCode(401));
      if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs));
      const fault = faults.take(method, req.url ?? "/");
      if (fault) {
        const headers: Record<string, string> =
          fault.retryAfterSeconds !== undefined ? { "Retry-After": String(fault.retryAfterSeconds) } : {};
        sendJson(
          res,
          fault.status,
          fault.body ?? forCode(fault.status, undefined, fault.retryAfterSeconds),
          headers,
        );
        return;
      }
      if (!route) return this.misc(url.pathname, res);
      await this.dispatch(req, res, method, route, url.searchParams);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) sendJson(res, err.status.code, err.status, err.headers);
      else
        sendJson(
          res,
          500,
          failure(500, "InternalError", `Internal error occurred: ${(err as Error).message}`),
        );
    }
  }

  private misc(pathname: string, res: ServerResponse): void {
    if (pathname === "/version") {
      sendJson(res, 200, {
        major: "1",
        minor: "31",
        gitVersion: "v1.31.0-kube-sim",
        platform: "linux/amd64",
      });
    } else if (["/healthz", "/readyz", "/livez"].includes(pathname)) {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
    } else {
      sendJson(res, 404, failure(404, "NotFound", "the server could not find the requested resource", {}));
    }
  }

  private async dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    route: Route,
    query: URLSearchParams,
  ): Promise<void> {
    const { store, watches } = this.parts;
    const { namespace, name, kind, resource } = route;
    const verb = verbOf(method, route, query);
    if (route.sub === "log") {
      if (method !== "GET")
        throw new ApiError(forCode(405, `the server does not allow this method on the requested resource`));
      return servePodLog(res, this.parts, namespace!, name!, query);
    }
    if (verb === "watch")
      return watches.serve(req, res, { kind, namespace, selector: selectorFor(query, kind), query });
    if (verb === "list") return sendJson(res, 200, listBody(store, route, query));
    if (verb === "get") {
      const found = store.get(kind, namespace!, name!);
      if (!found) throw notFound(resource, name!);
      return sendJson(res, 200, found);
    }
    if (verb === "create" && kind === "Job" && namespace !== undefined && !route.sub) {
      const body = await readJson(req);
      if (!body || typeof body !== "object")
        throw badRequest('Job in version "v1" cannot be handled as a Job: empty body');
      const dryRun = query.get("dryRun") === "All";
      return sendJson(res, 201, this.parts.jobs.create(namespace, body as Job, dryRun));
    }
    if ((verb === "delete" || verb === "deletecollection") && namespace !== undefined && !route.sub) {
      const { policy, grace } = deleteOptions(query, await readJson(req));
      const names = name
        ? [name]
        : store.list(kind, namespace, selectorFor(query, kind)).map((o) => o.metadata.name!);
      const warning: Record<string, string> =
        kind === "Job" && !policy ? { Warning: JOB_ORPHAN_WARNING } : {};
      let result: unknown;
      for (const n of names) result = this.deleteOne(kind, namespace, n, policy, grace);
      const body = name
        ? result
        : { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 200 };
      return sendJson(res, 200, body, warning);
    }
    throw new ApiError(forCode(405, "the server does not allow this method on the requested resource"));
  }

  private deleteOne(
    kind: Kind,
    namespace: string,
    name: string,
    policy: PropagationPolicy | undefined,
    grace: number | undefined,
  ): unknown {
    if (kind === "Job") return this.parts.jobs.delete(namespace, name, policy ?? "Orphan", grace);
    const pod = this.parts.kubelet.deletePod(namespace, name, grace);
    if (!pod) throw notFound(PODS, name);
    return pod satisfies Pod;
  }
}
