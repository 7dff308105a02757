import { clearSession, currentSession, whenUnauthorized } from "./api.ts";
import { fill, h } from "./dom.ts";
import { listPage } from "./list-page.ts";
import { parseRoute, type Page } from "./router.ts";
import { schedulesPage } from "./schedules-page.ts";
import { signInPage } from "./signin-page.ts";
import { stallBanner } from "./stall-banner.ts";
import { submitPage } from "./submit-page.ts";
import { workflowPage } from "./workflow-page.ts";

// The DWOP dashboard: one page, its screens in the URL's fragment (`#/`, `#/workflows/<id>`,
// `#/submit`, `#/schedules`, `#/signin`). Nothing is shown before sign-in; the token lives in sessionStorage only.

const app = document.getElementById("app")!;
const main = h("main", { id: "main", tabindex: -1 });
const who = h("span", { class: "who" });
const signOut = h("button", { type: "button", class: "link" }, "Sign out");
const nav = h(
  "nav",
  { "aria-label": "Main" },
  h("a", { href: "#/", "data-nav": "list" }, "Workflows"),
  h("a", { href: "#/submit", "data-nav": "submit" }, "Submit"),
  h("a", { href: "#/schedules", "data-nav": "schedules" }, "Schedules"),
);
fill(
  app,
  h("a", { href: "#main", class: "skip" }, "Skip to content"),
  h(
    "header",
    { class: "top" },
    h("a", { href: "#/", class: "brand" }, "DWOP"),
    nav,
    h("div", { class: "account" }, who, signOut),
  ),
  stallBanner(),
  main,
);

let page: Page | null = null;

signOut.addEventListener("click", () => {
  clearSession();
  location.hash = "#/signin";
});
whenUnauthorized(() => {
  clearSession();
  const next = location.hash.startsWith("#/signin") ? "" : `?next=${encodeURIComponent(location.hash)}`;
  location.hash = `#/signin${next}`;
});

function show(): void {
  page?.stop();
  page = null;
  const route = parseRoute(location.hash);
  const session = currentSession();
  if (!session && route.name !== "signin") {
    location.replace(`#/signin?next=${encodeURIComponent(location.hash || "#/")}`);
    return;
  }
  who.textContent = session ? `signed in as ${session.owner}` : "";
  signOut.hidden = !session;
  nav.hidden = !session;
  for (const a of nav.querySelectorAll<HTMLAnchorElement>("a")) {
    if (a.dataset.nav === route.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  fill(main);
  switch (route.name) {
    case "signin":
      page = signInPage(main, route.query);
      break;
    case "submit":
      page = submitPage(main);
      break;
    case "schedules":
      page = schedulesPage(main);
      break;
    case "workflow":
      page = workflowPage(main, route.id, route.query);
      break;
    default:
      page = listPage(main, route.query);
  }
}

window.addEventListener("hashchange", show);
show();
