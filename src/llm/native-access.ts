import type { Llama, LlamaContext, LlamaGrammarEvaluationState, LlamaModel } from "node-llama-cpp";
import { RuntimeFailure } from "../util/errors.js";

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
    context: { _ctx?: RawContext };
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
