/**
 * The URL a `dwop dev` on this machine that listens on `host` is reached at: a wildcard address (0.0.0.0,
 * ::) on loopback, an IPv6 address in brackets.
 */
export function localServerUrl(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  const reached = bare === "0.0.0.0" ? "127.0.0.1" : bare === "::" ? "::1" : bare;
  return `http://${reached.includes(":") ? `[${reached}]` : reached}:${port}`;
}
