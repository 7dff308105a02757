import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configSchema } from "../shared/config.ts";
import { startLocalExecutor } from "../shared/executors/local.ts";
import { shownSecret } from "../shared/executors/shown-folders.ts";
import { silentLogger } from "../shared/log.ts";
import { testFolder } from "./support/test-folder.ts";

// A folder sandboxed runs are shown (DWOP_TASK_ALLOW, PIP_FIND_LINKS) must not hold DWOP_HOME or .env, nor
// lie inside them: a normal user's runs share the user's uid, and would read the storage's signing secret,
// the API token, the database's password, every stored object.

describe("shownSecret", () => {
  it("names a shown folder that holds a secret, or lies inside one, where links lead", async () => {
    const top = await testFolder("dwop-shown-");
    const home = join(top, "project", ".dwop");
    await mkdir(join(home, "storage"), { recursive: true });
    await symlink(join(top, "project"), join(top, "link"));
    const secrets = [{ what: "DWOP_HOME", path: home }];
    expect(shownSecret([top], secrets)).toContain(`the folder ${top} that sandboxed runs would be shown`);
    expect(shownSecret([top], secrets)).toContain(`holds DWOP_HOME (${home})`);
    expect(shownSecret([join(top, "link")], secrets)).toContain(`${join(top, "project")} that sandboxed`);
    expect(shownSecret([join(home, "storage")], secrets)).toContain(`is inside DWOP_HOME (${home})`);
    expect(shownSecret(["/"], secrets)).toContain("holds DWOP_HOME");
    expect(shownSecret([join(top, "project-data"), "/usr/share"], secrets)).toBeNull();
  });
});

describe("startLocalExecutor", () => {
  it("refuses to start with a shown folder that holds DWOP_HOME", async () => {
    const top = await testFolder("dwop-shown-start-");
    const home = join(top, ".dwop");
    await mkdir(home);
    await writeFile(join(home, "storage.secret"), "s3cret");
    const config = { ...configSchema.parse({}), DWOP_HOME: home, DWOP_TASK_ALLOW: [top] };
    await expect(startLocalExecutor(config, join(home, "runs"), silentLogger)).rejects.toThrow(
      `the folder ${top} that sandboxed runs would be shown (DWOP_TASK_ALLOW or PIP_FIND_LINKS) holds DWOP_HOME`,
    );
  });
});
