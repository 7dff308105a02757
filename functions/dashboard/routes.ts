import type { Context, Hono, MiddlewareHandler } from "hono";
import * as z from "zod";
import { WORKFLOW_STATES } from "../../shared/model.ts";
import type { ApiDeps, ApiEnv } from "../context.ts";
import { parseWith } from "../errors.ts";
import type { RouteDoc } from "../openapi.ts";
import { TRIGGER_NAME, Workflow, withoutNul } from "../schemas.ts";
import { DASHBOARD_CSS, DASHBOARD_JS, DASHBOARD_VERSION } from "./assets.generated.ts";
import { contentSecurityPolicy, dashboardPage } from "./page.ts";
import { listWorkflowSummaries } from "./summaries.ts";

export const WorkflowSummaryQuery = z.object({
  status: z.enum(WORKFLOW_STATES).optional(),
  schedule: z
    .string()
    .regex(TRIGGER_NAME, "a schedule name is letters, digits, _ and -, at most 63")
    .optional()
    .meta({ description: "only the workflows this schedule started" }),
  q: z
    .string()
    .max(200)
    .refine(withoutNul, "must not contain the NUL character (U+0000)")
    .optional()
    .meta({ description: "part of the name (any case), or the start of the id" }),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.uuid().optional().meta({ description: "nextCursor of the previous page" }),
});

export const WorkflowSummaryList = z.object({
  owner: z.string().meta({ description: "the caller: every workflow listed is its own" }),
  workflows: z.array(
    Workflow.extend({
      owner: z.string(),
      tasks: z.record(z.string(), z.int()).meta({ description: "how many tasks are in each state" }),
    }),
  ),
  nextCursor: z.uuid().nullable(),
});

/**
 * Every answer of the dashboard's pages: no inline script or style, no other origin, no framing. The
 * pages hold no data; everything they show comes from the API with the signed-in token.
 */
const PAGE_HEADERS = {
  "content-security-policy": contentSecurityPolicy(),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const INDEX_HTML = dashboardPage();

/**
 * The web dashboard: a single page at `/ui/` (its routes live in the URL's fragment, so it works under
 * any path prefix, such as a Supabase function's), its two assets embedded in the app as strings (no
 * files to serve on Deno or workerd), and `GET /ui/api/workflows`, the list page's one query. The page
 * and its assets are served by a middleware, as static files are, so they stay out of /openapi.json.
 */
export function dashboardRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.get("/ui/api/workflows", async (c) => {
    const q = parseWith(WorkflowSummaryQuery, c.req.query(), 400, "query");
    const owner = c.get("caller").owner;
    const rows = await listWorkflowSummaries(deps.db, owner, {
      status: q.status,
      schedule: q.schedule,
      search: q.q,
      limit: q.limit + 1,
      cursor: q.cursor,
    });
    const page = rows.slice(0, q.limit);
    const nextCursor = rows.length > q.limit ? (page.at(-1)?.id ?? null) : null;
    return c.json({ owner, workflows: page, nextCursor });
  });
  app.use("/", async (c, next) => (isRead(c) ? redirectToUi(c) : next()));
  app.use("/ui/*", servePage);
}

const isRead = (c: Context) => c.req.method === "GET" || c.req.method === "HEAD";

/** `/ui` leads to `/ui/`, the page; `/ui/app.js` and `/ui/app.css` are its assets; the rest passes on. */
const servePage: MiddlewareHandler = async (c, next) => {
  if (!isRead(c)) return next();
  // The app may be mounted below a prefix (a Supabase function's name): look at the path from /ui on.
  const path = c.req.path;
  switch (path.slice(path.lastIndexOf("/ui"))) {
    case "/ui":
      return c.redirect("ui/", 302);
    case "/ui/":
      return c.html(INDEX_HTML, 200, { ...PAGE_HEADERS, "cache-control": "no-cache" });
    case "/ui/app.js":
      return asset(c, DASHBOARD_JS, "text/javascript; charset=utf-8");
    case "/ui/app.css":
      return asset(c, DASHBOARD_CSS, "text/css; charset=utf-8");
    default:
      return next();
  }
};

/** From the app's root to `ui/`, relative, so it lands right behind a path prefix the app cannot see. */
function redirectToUi(c: Context): Response {
  const path = c.req.path;
  const last = path.slice(path.lastIndexOf("/") + 1);
  return c.redirect(path.endsWith("/") ? "ui/" : `${last}/ui/`, 302);
}

/** An embedded asset; its ETag is the bundle's hash, and the page asks for it with `?v=` that hash. */
function asset(c: Context, body: string, type: string): Response {
  const etag = `"${DASHBOARD_VERSION}"`;
  const cache = c.req.query("v") === DASHBOARD_VERSION ? "public, max-age=31536000, immutable" : "no-cache";
  const headers = { ...PAGE_HEADERS, etag, "cache-control": cache };
  if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
  return c.body(body, 200, { ...headers, "content-type": type });
}

export const dashboardDocs: RouteDoc[] = [
  {
    method: "get",
    path: "/ui/api/workflows",
    summary: "The dashboard's list: the caller's workflows, newest first, with task counts by state",
    auth: "bearer",
    query: WorkflowSummaryQuery,
    responses: { 200: { description: "one page", schema: WorkflowSummaryList } },
    errors: [400],
  },
];
