/**
 * A list of web origins (`https://host[:port]`), commas or blanks between, as DWOP_CORS_ORIGINS gives
 * it. Each entry must be an origin and nothing more: a path, a query or a wildcard is refused, so that a
 * typo cannot open the API to more pages than meant.
 */
export function parseOrigins(value: string): string[] {
  const origins: string[] = [];
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new Error(`"${entry}" is not an origin such as https://dash.example.com`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new Error(`"${entry}" is not an http:// or https:// origin`);
    }
    if (url.origin !== entry.replace(/\/$/, "")) {
      throw new Error(`"${entry}" is not an origin: give scheme, host and port only (${url.origin})`);
    }
    origins.push(url.origin);
  }
  return origins;
}
