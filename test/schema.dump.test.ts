import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { dumpMigratedSchema, normaliseDump, SCHEMA_FILE } from "../supabase/schema-dump.ts";
import { ADMIN_URL } from "./support/db.ts";

const run = promisify(execFile);

/** `diff -u` of the committed file and a fresh dump: empty when they agree. */
async function difference(committed: string, fresh: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "dwop-schema-"));
  try {
    await writeFile(join(dir, "fresh.sql"), fresh);
    await run("diff", [
      "-u",
      "--label",
      "supabase/schema.sql",
      "--label",
      "fresh dump",
      committed,
      join(dir, "fresh.sql"),
    ]);
    return "";
  } catch (err) {
    // diff exits 1 when the files differ; its output is the answer.
    const e = err as { code?: number; stdout?: string };
    if (e.code === 1 && e.stdout) return e.stdout;
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("supabase/schema.sql", () => {
  it("is what the migrations make (regenerate with `npm run schema:dump`)", async () => {
    const fresh = await dumpMigratedSchema(ADMIN_URL);
    const diff = await difference(SCHEMA_FILE, fresh);
    expect(diff, `supabase/schema.sql is stale; run \`npm run schema:dump\` and commit it:\n${diff}`).toBe(
      "",
    );
    // The same content, byte for byte (diff -u would not tell a missing final newline in every case).
    expect(fresh === (await readFile(SCHEMA_FILE, "utf8"))).toBe(true);
  });

  it("drops only pg_dump's per-run \\restrict lines", () => {
    const dump =
      "--\n\\restrict abc123\n\nCREATE SCHEMA dwop;\n-- \\restrict in a comment stays\n\\unrestrict abc123\n";
    expect(normaliseDump(dump)).toBe("--\n\nCREATE SCHEMA dwop;\n-- \\restrict in a comment stays\n");
  });
});
