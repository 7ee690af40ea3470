/**
 * Exclusive use of a data directory: an advisory lock (flock) on `<dir>/LOCK`, held for the life
 * of the process, with the holder's PID written inside for the error message. The kernel
 * releases it when the process exits, even after SIGKILL, so there is nothing stale to clean up.
 */
import { join } from "@std/path";

export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

export interface DataDirLock {
  release(): void;
}

export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, "LOCK");
  const f = await Deno.open(path, { create: true, read: true, write: true });
  let locked = false;
  try {
    locked = await f.tryLock(true);
    if (!locked) {
      const holder = (await Deno.readTextFile(path)).trim();
      throw new DataDirLockedError(
        `data dir ${dir} is in use by another process${holder ? ` (pid ${holder})` : ""}; ` +
          `stop it first or choose another --data-dir`,
      );
    }
    await f.truncate(0);
    await f.write(new TextEncoder().encode(`${Deno.pid}\n`));
  } catch (err) {
    f.close();
    throw err;
  }
  return {
    release() {
      try {
        f.unlockSync();
      } finally {
        f.close();
      }
    },
  };
}
