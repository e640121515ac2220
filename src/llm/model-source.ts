import path from "node:path";
import fs from "node:fs";
import dns from "node:dns";
import { llamaLib } from "./llama-lib.js";
import { autoactCacheDir } from "../util/cache-dir.js";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { makeDirectory } from "../util/fs.js";

/**
 * Where downloaded models live: `$AUTOACT_CACHE/models`, else `~/.cache/autoact/models`
 * (`$XDG_CACHE_HOME` respected). One place, outside the repository.
 */
export function modelCacheDir(): string {
    return path.join(autoactCacheDir(), "models");
}

export function isRemoteSource(source: string): boolean {
    return /^(hf:|huggingface:|https?:\/\/)/i.test(source);
}

export interface ResolveSourceOptions {
    /** Download folder. Defaults to `modelCacheDir()`. */
    cacheDir?: string;
    /** Give up on a download that has not started after this many ms. Defaults to 20000. */
    connectTimeoutMs?: number;
}

/**
 * Turns a model source (a path, or an `hf:` / https URI) into a local file path. A URI is
 * looked up in the cache first and downloaded only when missing; without a network that
 * fails with one error naming the URI and the cache folder.
 */
export async function resolveModelSource(source: string, options: ResolveSourceOptions = {}): Promise<string> {
    if (!isRemoteSource(source)) {
        const filePath = path.resolve(source);
        if (!fs.existsSync(filePath))
            throw new InputError(`model file not found: ${filePath}`);
        return filePath;
    }
    const directory = options.cacheDir ?? modelCacheDir();
    // Only "not in the cache" leads to a download; any other failure of the lookup is reported.
    let cachedAt: string | null = null;
    try {
        return await (await llamaLib()).resolveModelFile(source, { directory, download: false, cli: false });
    } catch (error) {
        const message = errorMessage(error);
        const notCached = /^No model file found (at "([^"]+)"|for )/.exec(message);
        if (notCached == null)
            throw new InputError(`cannot look up model ${source} in the cache ${directory}: ${message.split("\n")[0]}`);
        cachedAt = notCached[2] ?? null;
    }
    // node-llama-cpp looks for its own file name (e.g. hf_<user>_<file>.gguf), not the URI's.
    const place = cachedAt != null ? `place the file at ${cachedAt}` : `place the file in ${directory} under the name node-llama-cpp gives ${source}`;
    const fail = (why: string) => new RuntimeFailure(`cannot download model ${source} into ${directory}: ${why}`, {
        hint: `without network, ${place} (or set AUTOACT_CACHE) or pass a local path`
    });
    // node-llama-cpp retries unreachable hosts for minutes and ignores the abort signal
    // meanwhile: check that the host resolves first, so offline runs fail at once.
    const host = /^https?:\/\//i.test(source) ? new URL(source).hostname : "huggingface.co";
    const timeoutMs = options.connectTimeoutMs ?? 20_000;
    try {
        await withTimeout(dns.promises.lookup(host), timeoutMs, `no answer for ${host}`);
    } catch (error) {
        throw fail(`no network (${host}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`);
    }
    makeDirectory(directory, "model cache folder");
    const controller = new AbortController();
    let started = false;
    const timer = setTimeout(() => {
        if (!started)
            controller.abort(new Error("timed out"));
    }, timeoutMs);
    try {
        const { resolveModelFile } = await llamaLib();
        const download = resolveModelFile(source, {
            directory,
            download: "auto",
            cli: false,
            signal: controller.signal,
            onProgress: () => { started = true; }
        });
        return await Promise.race([download, new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(new Error(`no download started within ${timeoutMs} ms`))))]);
    } catch (error) {
        throw fail(errorMessage(error).split("\n")[0]!);
    } finally {
        clearTimeout(timer);
    }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
        return await Promise.race([promise, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })]);
    } finally {
        clearTimeout(timer);
    }
}
