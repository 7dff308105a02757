import { chmodSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeFolders, makeFoldersSync, makePrivateFolder, prepareHome } from "../shared/folders.ts";
import { testFolder } from "./support/test-folder.ts";

describe("makeFolders and makeFoldersSync", () => {
  it("make a folder and its missing parents with the mode given, and leave existing ones", async () => {
    const root = await testFolder("dwop-folders-");
    const deep = join(root, "a", "b", "c");
    await makeFolders(deep, 0o700);
    makeFoldersSync(join(root, "a", "b", "d"), 0o750);
    for (const [path, mode] of [
      [join(root, "a"), 0o700],
      [deep, 0o700],
      [join(root, "a", "b", "d"), 0o750],
    ] as const) {
      expect(statSync(path).mode & 0o777).toBe(mode & ~process.umask());
    }
    await makeFolders(deep); // there already: nothing to do
    makeFoldersSync(deep);
    // Two at once, each making the same parents: neither fails for the other's folder.
    await Promise.all([makeFolders(join(root, "x", "y", "1")), makeFolders(join(root, "x", "y", "2"))]);
    expect(statSync(join(root, "x", "y", "2")).isDirectory()).toBe(true);
  });

  it("fail, instead of trying forever, where a folder cannot be made although its parent exists", async () => {
    // /proc answers ENOENT to a mkdir: Node 20's recursive mkdir made the parent and tried again, forever.
    await expect(makeFolders("/proc/dwop-no-such/folder")).rejects.toMatchObject({ code: "ENOENT" });
    expect(() => makeFoldersSync("/proc/dwop-no-such/folder")).toThrow(/ENOENT/);
    const root = await testFolder("dwop-folders-");
    writeFileSync(join(root, "file"), "");
    expect(() => makeFoldersSync(join(root, "file", "sub"))).toThrow(/ENOTDIR/);
  });
});

describe("prepareHome", () => {
  it("makes the home, or says which home cannot keep DWOP's files and why", async () => {
    const root = await testFolder("dwop-folders-");
    await prepareHome(join(root, "home", "nested"));
    expect(statSync(join(root, "home", "nested")).isDirectory()).toBe(true);
    expect(statSync(join(root, "home", "nested")).mode & 0o777).toBe(0o700); // nobody else lists it
    writeFileSync(join(root, "file"), "");
    for (const home of ["/proc/dwop-no-such-home", "/proc/self", join(root, "file")]) {
      await expect(prepareHome(home)).rejects.toThrow(
        `DWOP_HOME: ${home} is not a folder DWOP can keep its files in`,
      );
    }
  });
});

describe("makePrivateFolder", () => {
  it("makes a folder 0700, also one that was there open to all", async () => {
    const root = await testFolder("dwop-folders-");
    await makePrivateFolder(join(root, "made", "here"));
    expect(statSync(join(root, "made", "here")).mode & 0o777).toBe(0o700);
    const open = join(root, "open");
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    await makePrivateFolder(open);
    expect(statSync(open).mode & 0o777).toBe(0o700);
  });
});
