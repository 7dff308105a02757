import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`); `.ci/run` installs it when it is missing. */
export const CHROMIUM = process.env.DWOP_TEST_CHROMIUM ?? "/usr/bin/chromium";

/** Where screenshots go: test artifacts, gitignored. */
export const ARTIFACTS = fileURLToPath(new URL("../../test-results/dashboard/", import.meta.url));

/** The README's and docs/dashboard.md's pictures: refreshed only when asked, so a test run leaves git clean. */
export const DOC_SCREENSHOTS = fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));

/**
 * Copies a screenshot taken by `Browser.screenshot` into docs/screenshots/ when the run was started with
 * `DWOP_DOCS_SCREENSHOTS=1`.
 */
export async function keepForDocs(path: string, name: string): Promise<void> {
  if (process.env.DWOP_DOCS_SCREENSHOTS === "1") await copyFile(path, join(DOC_SCREENSHOTS, `${name}.png`));
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Saves a full-page screenshot as test-results/dashboard/<name>.png. */
  screenshot(name: string, page?: Page): Promise<string>;
  close(): Promise<void>;
}

/** Chromium, headless, with a fresh profile that nothing else shares, at 1280x800. */
export async function launchBrowser(): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), "dwop-chromium-"));
  await mkdir(ARTIFACTS, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async screenshot(name, p = page) {
      const path = join(ARTIFACTS, `${name}.png`);
      await p.screenshot({ path, fullPage: false });
      return path;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
