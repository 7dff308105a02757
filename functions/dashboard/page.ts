// The dashboard's one HTML page, as the API serves it under /ui/ and as `dwop dashboard build` writes it
// for a static host (a Supabase deployment: hosted Supabase serves a function's HTML as text/plain).
import { DASHBOARD_VERSION } from "./assets.generated.ts";

/** No inline script or style, no framing; `connect` is where the page's API calls may go. */
export function contentSecurityPolicy(connect = "'self'"): string {
  return (
    `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${connect}; ` +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
  );
}

/**
 * The page. Served by the API it needs no `apiUrl`: it finds the API from its own path. A static build
 * names the API's root URL in a meta tag, and its policy (a meta tag too: a static host may not let us
 * set headers) allows calls to that origin only.
 */
export function dashboardPage(apiUrl?: string): string {
  const head = apiUrl
    ? [
        `<meta http-equiv="content-security-policy" content="${escapeAttribute(staticPolicy(apiUrl))}">`,
        `<meta name="referrer" content="no-referrer">`,
        `<meta name="dwop-api" content="${escapeAttribute(apiUrl)}">`,
      ]
    : [];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
${head.map((line) => `${line}\n`).join("")}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DWOP</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css?v=${DASHBOARD_VERSION}">
<script src="app.js?v=${DASHBOARD_VERSION}" defer></script>
</head>
<body>
<div id="app"><p class="boot">Loading the DWOP dashboard…</p></div>
<noscript>The DWOP dashboard needs JavaScript.</noscript>
</body>
</html>
`;
}

/** frame-ancestors has no effect in a meta tag, so the static page's policy leaves it out. */
function staticPolicy(apiUrl: string): string {
  return contentSecurityPolicy(new URL(apiUrl).origin).replace("; frame-ancestors 'none'", "");
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
