/** Public types of the inference engine (re-exported by `engine.ts`). */

/** The compute backends a user can ask for; "auto" takes the best one available. */
export const gpuChoices = ["auto", "cuda", "metal", "vulkan", "cpu"] as const;
export type GpuChoice = (typeof gpuChoices)[number];

export interface EngineOptions {
    /** Which compute backend to use. Defaults to "auto" (best available, else CPU). */
    gpu?: GpuChoice;
    /** CPU threads for evaluation. Defaults to the physical cores this process may use (see `defaultThreadCount`). */
    threads?: number;
    /**
     * Use autoact's engine helper addon on CPU (persistent threadpool, main-thread decode of
     * generation steps), built by `autoact native build-engine` (see `native-addon-build.ts`).
     * When it is not built the engine says so once on stderr and uses node-llama-cpp's own
     * calls. Defaults to true (the environment variable AUTOACT_ENGINE_HELPER=off turns it off).
     */
    helper?: boolean;
}

export interface LoadModelOptions {
    /** Layers to offload to the GPU. Defaults to "auto" (as many as fit); ignored on CPU. */
    gpuLayers?: number | "auto";
    /** Load only the vocabulary and metadata (prompts for a remote server). Defaults to false. */
    vocabOnly?: boolean;
}

export interface AdapterSpec {
    /** A GGUF LoRA adapter file. */
    filePath: string;
    /** Multiplier of the adapter's delta. Defaults to 1. */
    scale?: number;
}

export interface GeneratorOptions {
    /** Parallel sequences in the context (requests decoded in one batch). Defaults to 1. */
    parallel?: number;
    /** Tokens each sequence can hold (prompt + generation). Defaults to min(4096, the model's training context). */
    contextSize?: number;
    /** LoRA adapters applied to this generator's context. Defaults to none. */
    adapters?: AdapterSpec[];
    /** Most tokens decoded in one batch (prompt chunks of all sequences together). Defaults to the engine's defaultBatchSize. */
    batchSize?: number;
    /** Flash attention on or off in the context. Defaults to node-llama-cpp's choice ("auto": on where the model and backend support it). */
    flashAttention?: boolean;
}

export type GrammarSpec = { gbnf: string } | { jsonSchema: object };

export interface GenerationRequest {
    /** Text (tokenized with special tokens parsed) or token ids. */
    prompt: string | number[];
    /** Most tokens to generate. Defaults to 256. */
    maxTokens?: number;
    /** Strings that end the generation; they are cut from `text`. Defaults to none. */
    stop?: string[];
    /** Sampling temperature; 0 = greedy. Defaults to 0. */
    temperature?: number;
    /** Nucleus sampling threshold. Defaults to 1 (off). */
    topP?: number;
    /** Keep only the k most likely tokens; 0 = off. Defaults to 0. */
    topK?: number;
    /** Seed of the sampler (0 to 2^32 - 1): the same seed repeats a sampled request. Defaults to a random seed. */
    seed?: number;
    /** Keep generating past end-of-generation tokens (benchmarks). Defaults to false. */
    ignoreEos?: boolean;
    /** Constrain the output to a GBNF grammar or a JSON schema. Defaults to none. */
    grammar?: GrammarSpec;
}

export type StopReason = "eos" | "stop" | "maxTokens" | "contextFull";

export interface GenerationResult {
    /**
     * Generated text, with the stop string (and anything after it) cut off; ended by maxTokens or
     * a full context, without an unfinished character or the start of a stop string at its end.
     */
    text: string;
    /** Generated token ids (without the EOS token; with the tokens that spelled a stop string). */
    tokens: number[];
    stopReason: StopReason;
    promptTokens: number;
    generatedTokens: number;
    /** Wall time from the request's start of evaluation to its end, in ms. */
    timeMs: number;
}

export interface GeneratorStats {
    /** Prompt tokens actually evaluated (cached prefixes excluded). */
    promptTokens: number;
    generatedTokens: number;
    /** Prompt tokens served from a sequence's cache instead of being evaluated. */
    reusedTokens: number;
    /** Time the generator spent with at least one request in flight, in ms. */
    busyMs: number;
}
