import { existsSync, realpathSync } from "node:fs";
import { resolve, sep } from "node:path";

/** A place the sandbox hides from runs because it holds secrets, and what it is called in a message. */
export interface Secret {
  what: string;
  path: string;
}

/**
 * Why showing `folders` to sandboxed runs (DWOP_TASK_ALLOW, a PIP_FIND_LINKS folder) would show them a secret,
 * or null: a folder that holds one (DWOP_HOME has the storage's signing secret, the API token, the embedded
 * database's password, every stored object and every run's folder; .env the server's settings), or lies
 * inside one. A normal user's runs share the user's uid, so no file mode would stop them there.
 */
export function shownSecret(folders: string[], secrets: Secret[]): string | null {
  for (const folder of folders.map(real)) {
    for (const secret of secrets) {
      const path = real(secret.path);
      if (within(path, folder) || within(folder, path)) {
        return (
          `the folder ${folder} that sandboxed runs would be shown (DWOP_TASK_ALLOW or PIP_FIND_LINKS) ` +
          `${within(path, folder) ? "holds" : "is inside"} ${secret.what} (${path}), which runs must not ` +
          "read: show a folder that holds only what the tasks need"
        );
      }
    }
  }
  return null;
}

/** The path with its links followed where it exists (its folders may be links), else as given, absolute. */
function real(path: string): string {
  const absolute = resolve(path);
  return existsSync(absolute) ? realpathSync(absolute) : absolute;
}

/** Whether path is folder or below it. */
function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}
