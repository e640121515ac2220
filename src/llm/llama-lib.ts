/**
 * node-llama-cpp, loaded on first use: importing it costs ~0.3 s, which every CLI command
 * paid before it knew whether it needed a model (`--help`, `inspect`, a config error).
 */
type LlamaLib = typeof import("node-llama-cpp");

let loaded: LlamaLib | null = null;
let loading: Promise<LlamaLib> | null = null;

export async function llamaLib(): Promise<LlamaLib> {
    loading ??= import("node-llama-cpp").then((lib) => (loaded = lib));
    return loading;
}

/** The library where a loaded model proves it was imported (generators, chat formats). */
export function loadedLlamaLib(): LlamaLib {
    if (loaded == null)
        throw new Error("node-llama-cpp used before llamaLib() loaded it");
    return loaded;
}
