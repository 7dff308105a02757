import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { buildDashboard, GENERATED } from "../bin/build-dashboard.ts";

describe("the dashboard's embedded bundle", () => {
  it("is what functions/dashboard/ui/ builds to (run `npm run build:dashboard` after changing it)", async () => {
    const committed = await readFile(GENERATED, "utf8");
    expect(committed === (await buildDashboard()), "functions/dashboard/assets.generated.ts is stale").toBe(
      true,
    );
  });
});
