/** A page of the dashboard; `stop()` ends its timers and streams when another page takes over. */
export interface Page {
  stop(): void;
}

export type Route =
  | { name: "list"; query: URLSearchParams }
  | { name: "workflow"; id: string; query: URLSearchParams }
  | { name: "submit"; query: URLSearchParams }
  | { name: "schedules"; query: URLSearchParams }
  | { name: "signin"; query: URLSearchParams };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The page a `#/...` fragment names; anything unknown is the list. */
export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  const path = q === -1 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : raw.slice(q + 1));
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "workflows" && parts[1] && UUID.test(parts[1]))
    return { name: "workflow", id: parts[1], query };
  if (parts[0] === "submit") return { name: "submit", query };
  if (parts[0] === "schedules") return { name: "schedules", query };
  if (parts[0] === "signin") return { name: "signin", query };
  return { name: "list", query };
}
