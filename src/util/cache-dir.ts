import os from "node:os";
import path from "node:path";

/**
 * autoact's cache folder: `$AUTOACT_CACHE`, else `$XDG_CACHE_HOME/autoact`, else
 * `~/.cache/autoact`. Downloaded models, file hashes and the engine helper live here, never
 * in the package folder.
 */
export function autoactCacheDir(): string {
    if (process.env.AUTOACT_CACHE)
        return path.resolve(process.env.AUTOACT_CACHE);
    const base = process.env.XDG_CACHE_HOME ? path.resolve(process.env.XDG_CACHE_HOME) : path.join(os.homedir(), ".cache");
    return path.join(base, "autoact");
}
