import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Llama, LlamaContext, LlamaGrammarEvaluationState, LlamaModel } from "node-llama-cpp";
import { RuntimeFailure, errorMessage } from "../util/errors.js";
import { autoactCacheDir } from "../util/cache-dir.js";

/**
 * The few node-llama-cpp internals the engine drives directly (pinned to 3.21.1).
 *
 * `LlamaContextSequence.evaluate` costs several JS promise hops, locks and an O(n) token-array
 * copy per token on top of each native call; the generator instead fills one llama batch for
 * all its sequences, decodes it with one native call and samples each sequence with its own
 * native sampler. These are the addon objects node-llama-cpp itself calls.
 */
export interface RawContext {
    initBatch(size: number): void;
    addToBatch(sequenceId: number, firstTokenSequenceIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
    decodeBatch(): Promise<void>;
    sampleToken(batchLogitIndex: number, sampler: RawSampler): Promise<number>;
    sampleToken(batchLogitIndex: number, sampler: RawSampler, probabilities: boolean, confidence?: boolean):
        Promise<[token: number, probabilities: number[] | undefined, confidence: number | undefined]>;
    removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
    setThreads(threads: number): void;
    getThreads(): number;
}

export interface RawSampler {
    applyConfig(config: Record<string, unknown>): void;
    dispose(): void;
}

export interface SamplerConfig {
    temperature: number;
    topK?: number;
    topP?: number;
    seed?: number;
    grammarEvaluationState?: unknown;
}

interface Internals {
    context: { _ctx?: RawContext; _backendContextDisposeGuard?: { createPreventDisposalHandle(): { dispose(): void } } };
    model: { _model?: unknown };
    llama: { _bindings?: { AddonSampler?: new (model: unknown) => RawSampler } };
    grammarState: { _state?: unknown };
}

export function rawContext(context: LlamaContext): RawContext {
    const raw = (context as unknown as Internals["context"])._ctx;
    if (raw == null || typeof raw.decodeBatch !== "function" || typeof raw.addToBatch !== "function")
        throw new RuntimeFailure("node-llama-cpp internals changed (LlamaContext._ctx): autoact needs node-llama-cpp 3.21.1");
    return raw;
}

/**
 * Runs `fn` with the context's native memory kept: its disposal (also by its model's or the
 * engine's) waits until `fn` settles, as node-llama-cpp's own decodes do; freeing it under a
 * decode on a worker thread would crash the process. Throws once the disposal has begun.
 */
export async function whileContextAlive<T>(context: LlamaContext, fn: () => Promise<T> | T): Promise<T> {
    const guard = (context as unknown as Internals["context"])._backendContextDisposeGuard;
    if (guard == null || typeof guard.createPreventDisposalHandle !== "function")
        throw new RuntimeFailure("node-llama-cpp internals changed (LlamaContext._backendContextDisposeGuard): autoact needs node-llama-cpp 3.21.1");
    let hold: { dispose(): void };
    try {
        hold = guard.createPreventDisposalHandle();
    } catch {
        throw new RuntimeFailure("the context was disposed (its model or engine was disposed)");
    }
    try {
        return await fn();
    } finally {
        hold.dispose();
    }
}

export function createRawSampler(llama: Llama, model: LlamaModel, config: SamplerConfig): RawSampler {
    const Sampler = (llama as unknown as Internals["llama"])._bindings?.AddonSampler;
    const addonModel = (model as unknown as Internals["model"])._model;
    if (Sampler == null || addonModel == null)
        throw new RuntimeFailure("node-llama-cpp internals changed (AddonSampler): autoact needs node-llama-cpp 3.21.1");
    const sampler = new Sampler(addonModel);
    // Only set what is on: top-k <= 0 would sort the whole vocabulary for nothing.
    const applied: Record<string, unknown> = { temperature: config.temperature };
    if (config.temperature > 0) {
        if (config.topK != null && config.topK > 0)
            applied.topK = config.topK;
        if (config.topP != null && config.topP < 1)
            applied.topP = config.topP;
        applied.seed = config.seed ?? 0;
    }
    if (config.grammarEvaluationState != null)
        applied.grammarEvaluationState = config.grammarEvaluationState;
    sampler.applyConfig(applied);
    return sampler;
}

export function rawGrammarState(state: LlamaGrammarEvaluationState): unknown {
    const raw = (state as unknown as Internals["grammarState"])._state;
    if (raw == null)
        throw new RuntimeFailure("node-llama-cpp internals changed (LlamaGrammarEvaluationState._state): autoact needs node-llama-cpp 3.21.1");
    return raw;
}

/**
 * autoact's engine helper addon (src/llm/native/engine-helper.cpp, built by
 * `autoact native build-engine` into `engineHelperPath()`): a persistent ggml threadpool per
 * context, and a synchronous decode / greedy pick for small generation batches.
 */
export interface EngineHelper {
    readonly version: number;
    /** Attaches a threadpool of `threads` to node-llama-cpp's addon context; checks it first (`contextCells` = per-sequence size x sequences). */
    attach(context: RawContext, threads: number, contextCells: number, sequences: number, batchCapacity: number): EngineHelperHandle;
    /** Detaches and frees the threadpool; call before the context is disposed. */
    release(handle: EngineHelperHandle): void;
    /** llama_decode of `count` tokens on the calling thread; returns its status (0 = ok). */
    decode(handle: EngineHelperHandle, tokens: Int32Array, sequenceIds: Int32Array, positions: Int32Array, logits: Int32Array, count: number): number;
    /** The token with the highest logit at a batch index of the last decode. */
    argmax(handle: EngineHelperHandle, batchIndex: number): number;
    /** node-llama-cpp's own sampling (grammar included) at a batch index, on the calling thread; -1 = none. */
    sample(handle: EngineHelperHandle, batchIndex: number, sampler: RawSampler): number;
}

export type EngineHelperHandle = { readonly __engineHelperHandle: unique symbol };

/**
 * The helper's interface version: compiled into the addon (-DAUTOACT_ENGINE_HELPER_VERSION) and
 * part of its file name, so a stale build is never loaded.
 */
export const engineHelperVersion = 3;
let helperState: { helper?: EngineHelper; warned: boolean; loaded: boolean } = { warned: false, loaded: false };

/**
 * Where `autoact native build-engine` puts the helper: the autoact cache folder (never the
 * package folder), keyed by the node-llama-cpp version it was compiled against and its own
 * interface version. `AUTOACT_ENGINE_HELPER=FILE` points elsewhere.
 */
export function engineHelperPath(): string {
    const given = process.env.AUTOACT_ENGINE_HELPER;
    if (given != null && given !== "" && given !== "off")
        return path.resolve(given);
    return path.join(autoactCacheDir(), "engine-addon", `node-llama-cpp-${nodeLlamaCppVersion()}`, `engine-helper-v${engineHelperVersion}.node`);
}

export function nodeLlamaCppVersion(): string {
    const require = createRequire(import.meta.url);
    const pkgPath = path.join(path.dirname(require.resolve("node-llama-cpp")), "..", "package.json");
    return (JSON.parse(fs.readFileSync(pkgPath, "utf8")) as { version: string }).version;
}

/**
 * The helper when it is built, else undefined (the engine then runs on node-llama-cpp's own
 * calls, several times slower per token on CPU: said once on stderr). Loading only reads the
 * file: it is built by `autoact native build-engine` (CI and the tests' setup run it).
 * Load it only after getLlama(): it resolves llama.cpp's libraries that node-llama-cpp loaded.
 * `AUTOACT_ENGINE_HELPER=off` disables it (benchmarks compare both paths).
 */
export function loadEngineHelper(): EngineHelper | undefined {
    if (helperState.loaded)
        return helperState.helper;
    helperState.loaded = true;
    if (process.env.AUTOACT_ENGINE_HELPER === "off")
        return undefined;
    const file = engineHelperPath();
    let problem: string | undefined;
    if (fs.existsSync(file)) {
        try {
            const helper = createRequire(import.meta.url)(file) as EngineHelper;
            if (helper.version === engineHelperVersion)
                helperState.helper = helper;
            else
                problem = `${file} is version ${helper.version}, expected ${engineHelperVersion}: rebuild it`;
        } catch (error) {
            problem = `cannot load ${file}: ${errorMessage(error).split("\n")[0]}`;
        }
    } else {
        problem = `${file} is not built`;
    }
    if (problem != null && !helperState.warned) {
        helperState.warned = true;
        process.stderr.write(`autoact: engine helper unavailable (${problem}); using node-llama-cpp's slower per-token path. Build it with \`autoact native build-engine\`.\n`);
    }
    return helperState.helper;
}

/** @internal tests: forget the loaded state. */
export function resetEngineHelperForTests(): void {
    helperState = { warned: false, loaded: false };
}
