import { apiRoot } from "./api.ts";
import { h } from "./dom.ts";

// A banner above every page while the system is stalled: the server's /readyz says publishing or
// dispatching has stopped (or its database is unreachable), or the server itself cannot be reached.
// Without it a stalled system looks like a workflow that is merely slow.

/** What /readyz says (see functions/stall.ts); `since` is an ISO time. */
interface Stall {
  since: string;
  what: string;
  message: string;
}

const POLL_MS = 3000;

// Styled here rather than in styles.css, so the banner is one self-contained piece; through the CSSOM,
// which the page's Content-Security-Policy allows (a style attribute it refuses).
const STYLE: Partial<CSSStyleDeclaration> = {
  margin: "0",
  padding: ".5rem 1.25rem",
  background: "#fff4e5",
  color: "#7a3e00",
  borderBottom: "1px solid #f0b46c",
  fontSize: ".9rem",
};

/** The banner element, kept up to date by polling /readyz; add it once, above the page. */
export function stallBanner(): HTMLElement {
  const text = h("span", { "data-stall-message": "" });
  const banner = h(
    "div",
    { class: "stall-banner", role: "status", "aria-live": "polite" },
    h("strong", {}, "Stalled: "),
    text,
  );
  Object.assign(banner.style, STYLE);
  banner.hidden = true;
  let unreachableSince: string | null = null;

  const show = (stall: Stall | null) => {
    banner.hidden = stall === null;
    banner.dataset.what = stall?.what ?? "";
    if (stall) text.textContent = `${stall.message} (since ${new Date(stall.since).toLocaleTimeString()})`;
  };
  const tick = async () => {
    try {
      const res = await fetch(`${apiRoot()}readyz`, { cache: "no-store" });
      const body = (await res.json()) as { stall?: Stall | null };
      unreachableSince = null;
      show(body.stall ?? null);
    } catch {
      unreachableSince ??= new Date().toISOString();
      show({ since: unreachableSince, what: "server", message: "the server cannot be reached" });
    }
  };
  setInterval(() => void tick(), POLL_MS);
  void tick();
  return banner;
}
