/**
 * Points AUTOACT_CACHE at a test's own folder (hashes, adapters and models then stay out of the
 * user's cache) and returns the function that puts the previous value back.
 */
export function useCacheDir(dir: string): () => void {
    const saved = process.env.AUTOACT_CACHE;
    process.env.AUTOACT_CACHE = dir;
    return () => {
        if (saved == null)
            delete process.env.AUTOACT_CACHE;
        else
            process.env.AUTOACT_CACHE = saved;
    };
}
