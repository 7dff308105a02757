import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { parseAllowList } from "../shared/net/addresses.ts";
import { pinnedTransport } from "../shared/net/pinned-post.ts";

const run = promisify(execFile);
let server: Server | null = null;
let folder: string | null = null;

afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
  server = folder = null;
});

describe("pinnedTransport over TLS", () => {
  it("connects to the checked address but sends the URL's name as SNI, and checks the certificate", async () => {
    folder = await mkdtemp(join(tmpdir(), "dwop-tls-"));
    const key = join(folder, "key.pem");
    const cert = join(folder, "cert.pem");
    // prettier-ignore
    await run("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=receiver.test",
      "-addext", "subjectAltName=DNS:receiver.test", "-keyout", key, "-out", cert,
    ]);
    const names: string[] = [];
    let requests = 0;
    const options = {
      key: await readFile(key),
      cert: await readFile(cert),
      // The name the client asked for in its ClientHello; undefined keeps the default certificate.
      SNICallback: (name: string, done: (err: Error | null, ctx?: undefined) => void) => {
        names.push(name);
        done(null, undefined);
      },
    };
    server = createHttpsServer(options, (_req, res) => {
      requests += 1;
      res.writeHead(204).end();
    });
    server.on("tlsClientError", () => {});
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;

    // receiver.test exists only in this resolver; the certificate is self-signed, so no client trusts it.
    const post = pinnedTransport(parseAllowList("127.0.0.1/32"), (name) =>
      name === "receiver.test" ? Promise.resolve(["127.0.0.1"]) : Promise.reject(new Error("ENOTFOUND")),
    );
    const sent = post({
      url: `https://receiver.test:${port}/done`,
      headers: {},
      body: "{}",
      timeoutMs: 5000,
    });
    await expect(sent).rejects.toThrow(/self[- ]signed/);
    expect(names).toEqual(["receiver.test"]); // reached 127.0.0.1, asking for the URL's name
    expect(requests).toBe(0); // and sent nothing to a server it could not verify
  });
});
