import fs from "node:fs";
import path from "node:path";
import { autoactCacheDir } from "./cache-dir.js";
import { sha256File, writeFileAtomicSync } from "./fs.js";

/**
 * sha256 of a (possibly multi-GB) file, remembered by path, size and modification time in
 * the cache folder, so a model is hashed once rather than on every run.
 */
export async function cachedSha256(file: string): Promise<string> {
    const stat = fs.statSync(file);
    const key = `${path.resolve(file)}|${stat.size}|${stat.mtimeMs}`;
    const cacheFile = path.join(autoactCacheDir(), "file-hashes.json");
    let cache: Record<string, string> = {};
    try {
        cache = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as Record<string, string>;
    } catch {
        // no cache yet, or unreadable: start a new one
    }
    const known = cache[key];
    if (known != null)
        return known;
    const digest = await sha256File(file);
    // entries of files that are gone (temporary runs) or changed since go, so the cache stays small
    const stale = (k: string) => { const at = k.slice(0, k.indexOf("|")); return at === path.resolve(file) || !fs.existsSync(at); };
    cache = Object.fromEntries(Object.entries(cache).filter(([k]) => !stale(k)));
    cache[key] = digest;
    try {
        writeFileAtomicSync(cacheFile, JSON.stringify(cache, null, 1));
    } catch {
        // a read-only cache folder only costs a rehash next time
    }
    return digest;
}
