import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { DASHBOARD_CSS, DASHBOARD_JS } from "../../functions/dashboard/assets.generated.ts";
import { dashboardPage } from "../../functions/dashboard/page.ts";
import { CliError, EXIT } from "../exit.ts";
import { handleShutdown, STOP_DEADLINE_MS } from "../shutdown.ts";
import { makeFolders } from "../../shared/folders.ts";

/** The static dashboard's files, pointed at the API whose root URL is `api`. */
export function staticDashboard(api: string): Map<string, { body: string; type: string }> {
  return new Map([
    ["index.html", { body: dashboardPage(apiRoot(api)), type: "text/html; charset=utf-8" }],
    ["app.js", { body: DASHBOARD_JS, type: "text/javascript; charset=utf-8" }],
    ["app.css", { body: DASHBOARD_CSS, type: "text/css; charset=utf-8" }],
  ]);
}

/** `dwop dashboard build --api URL [--out DIR]`: the dashboard as three files for any static host. */
export async function dashboardBuildCommand(opts: { api: string; out?: string }): Promise<number> {
  const out = resolve(opts.out ?? "dwop-dashboard");
  const files = staticDashboard(opts.api);
  await makeFolders(out);
  for (const [name, file] of files) await writeFile(join(out, name), file.body);
  process.stdout.write(
    `wrote ${[...files.keys()].join(", ")} to ${out}\n` +
      `Host that folder over HTTPS (not on Supabase Storage, which serves HTML as text/plain) and let its\n` +
      `origin call the API: DWOP_CORS_ORIGINS=https://<where you host it> in the API's environment.\n`,
  );
  return EXIT.ok;
}

/**
 * `dwop dashboard serve --api URL`: the static dashboard on this machine (127.0.0.1 by default), for a
 * deployment whose API cannot serve it as a page (hosted Supabase). Runs until Ctrl-C.
 */
export async function dashboardServeCommand(opts: {
  api: string;
  port?: string;
  host?: string;
}): Promise<number> {
  const files = staticDashboard(opts.api);
  const host = opts.host ?? "127.0.0.1";
  const port = Number(opts.port ?? 8090);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CliError(`bad --port '${opts.port}'`, EXIT.usage);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = files.get(path === "/" ? "index.html" : path.slice(1));
    if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "content-type": file.type,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
    });
    res.end(req.method === "HEAD" ? undefined : file.body);
  });
  await new Promise<void>((ok, fail) => server.once("error", fail).listen(port, host, ok));
  const address = server.address();
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${typeof address === "object" && address ? address.port : port}`;
  process.stdout.write(
    `dashboard for ${apiRoot(opts.api)} at ${url}/\n` +
      `the API must allow this origin: DWOP_CORS_ORIGINS=${url}\n`,
  );
  handleShutdown({
    line: (signal) => `${signal}: stopped`,
    mute: () => {},
    stop: () => new Promise<void>((ok) => server.close(() => ok())),
    deadlineMs: () => STOP_DEADLINE_MS,
  });
  return new Promise<number>(() => {}); // until a signal: the handler exits the process
}

/** The API's root URL, ending in `/`: an http(s) URL with no query or fragment. */
function apiRoot(api: string): string {
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw new CliError(
      `--api '${api}' is not a URL (such as https://PROJECT.supabase.co/functions/v1/api)`,
      EXIT.usage,
    );
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.search || url.hash) {
    throw new CliError(`--api '${api}' must be an http(s) URL with no query or fragment`, EXIT.usage);
  }
  return url.href.endsWith("/") ? url.href : `${url.href}/`;
}
