// Node-only: /metrics, /healthz and /readyz for Prometheus and the kubelet's probes.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../shared/log.ts";

export interface OpsHandlers {
  metrics: () => Promise<string>;
  contentType: string;
  /** Liveness: the process is working (its event loop answers, it has not given up). */
  healthy: () => boolean;
  /** Readiness: it can do its work now (database reachable, not shutting down). */
  ready: () => Promise<boolean>;
  logger: Logger;
}

/** Serves the three endpoints; resolves with the server and the port it listens on. */
export async function serveOps(
  host: string,
  port: number,
  h: OpsHandlers,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (req.method !== "GET") return send(405, "method not allowed\n");
    if (path === "/healthz") return h.healthy() ? send(200, "ok\n") : send(503, "unhealthy\n");
    if (path === "/readyz") {
      void h.ready().then(
        (ok) => (ok ? send(200, "ready\n") : send(503, "not ready\n")),
        () => send(503, "not ready\n"),
      );
      return;
    }
    if (path === "/metrics") {
      void h.metrics().then(
        (text) => send(200, text, h.contentType),
        (err: unknown) => {
          h.logger.error({ err }, "could not render metrics");
          send(500, "metrics unavailable\n");
        },
      );
      return;
    }
    send(404, "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
