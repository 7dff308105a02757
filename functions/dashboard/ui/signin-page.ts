import { ApiError, call, saveSession } from "./api.ts";
import { fill, h } from "./dom.ts";
import type { Page } from "./router.ts";
import type { SummaryPage } from "./types.ts";

/**
 * Sign-in with a bearer token: an API key (`dwop_...`), the server's DWOP_API_TOKEN, or a Supabase
 * session's access token. The server checks it; the dashboard keeps it in sessionStorage, which the
 * browser forgets with the tab.
 */
export function signInPage(root: HTMLElement, query: URLSearchParams): Page {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const error = h("p", { class: "callout failure", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "panel signin" },
    h("h1", { tabindex: -1 }, "Sign in to DWOP"),
    h("label", { for: "token" }, "API key or session token"),
    input,
    h(
      "p",
      { id: "token-help", class: "muted" },
      "An API key (dwop_…), the server's DWOP_API_TOKEN (dwop dev prints where it is), or the access token of a Supabase session. It is kept in this tab only.",
    ),
    error,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void signIn();
  });

  async function signIn(): Promise<void> {
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    error.hidden = true;
    try {
      const res = await call("ui/api/workflows?limit=1", {}, token);
      const { owner } = (await res.json()) as SummaryPage;
      saveSession({ token, owner });
      const next = query.get("next");
      location.hash = next && next.startsWith("#/") && !next.startsWith("#/signin") ? next : "#/";
    } catch (err) {
      error.hidden = false;
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? `That token was not accepted: ${err.message}`
          : String((err as Error).message);
      input.focus();
    } finally {
      button.disabled = false;
    }
  }

  fill(root, form);
  input.focus();
  return { stop() {} };
}
