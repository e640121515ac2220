import fs from "node:fs";
import path from "node:path";
import type { Llama, LlamaContext, LlamaGrammar, LlamaModel, Token } from "node-llama-cpp";
import { llamaLib } from "./llama-lib.js";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { defaultThreadCount } from "./cpu.js";
import { checkAdapterFitsBase, checkGgufFile } from "./gguf-check.js";
import { Generator, type GeneratorHost } from "./generator.js";
import { checkTokenIds } from "./request-check.js";
import { resolveModelSource } from "./model-source.js";
import { RemoteBackend, type RemoteOptions } from "./remote-backend.js";
import { HelperBackend, NodeLlamaBackend, type DecodeBackend } from "./decode-backend.js";
import { createRawSampler, loadEngineHelper, rawContext, whileContextAlive, type EngineHelper, type EngineHelperHandle } from "./native-access.js";
import { gpuChoices, type AdapterSpec, type EngineOptions, type GenerationRequest, type GeneratorOptions, type GpuChoice, type LoadModelOptions } from "./types.js";

export type * from "./types.js";
export { Generator } from "./generator.js";
export { modelCacheDir } from "./model-source.js";
export { defaultThreadCount } from "./cpu.js";
export { remoteServerKinds, type RemoteOptions, type RemoteServerKind } from "./remote-backend.js";

/** Creates the engine: one llama.cpp binding (backend + thread count) for all models. */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
    const gpu: GpuChoice = options.gpu ?? "auto";
    if (!(gpuChoices as readonly string[]).includes(gpu))
        throw new InputError(`unknown GPU choice "${gpu}" (expected ${gpuChoices.join(", ")})`);
    const threads = options.threads ?? defaultThreadCount();
    if (!Number.isInteger(threads) || threads < 1)
        throw new InputError(`invalid thread count ${threads} (expected a positive integer)`);
    let llama: Llama;
    try {
        const { getLlama, LlamaLogLevel } = await llamaLib();
        llama = await getLlama({
            gpu: gpu === "cpu" ? false : gpu,
            // node-llama-cpp's own default (max(4, cores)) makes small machines ~100x slower.
            maxThreads: threads,
            logLevel: LlamaLogLevel.error,
            // Never compile llama.cpp behind the user's back: use a prebuilt or an existing local build.
            build: "never",
            progressLogs: false
        });
    } catch (error) {
        const cause = (error as Error)?.constructor?.name === "NoBinaryFoundError"
            ? `node-llama-cpp has no ${gpu} build that runs on this machine (is the GPU's driver installed?)`
            : errorMessage(error).split("\n")[0];
        throw new RuntimeFailure(`cannot start llama.cpp with gpu=${gpu}: ${cause}; --gpu auto takes what is there`);
    }
    // an explicit backend that llama.cpp does not have here (metal off a Mac) is not run on the CPU in its name
    const running = llama.gpu === false ? "cpu" : llama.gpu;
    if (gpu !== "auto" && running !== gpu) {
        await llama.dispose();
        throw new RuntimeFailure(`cannot start llama.cpp with gpu=${gpu}: it runs on ${running} here; --gpu auto takes what is there`);
    }
    return new Engine(llama, threads, options.helper ?? true);
}

/**
 * Batches of at most this many tokens are decoded on the main thread by the engine helper (a
 * generation step of every sequence); prompt chunks go to node-llama-cpp's worker thread so
 * the event loop is never blocked for long.
 */
export const helperStepLimit = 64;

/** Most tokens a context decodes in one call (n_batch = n_ubatch), unless a caller asks otherwise. */
export const defaultBatchSize = 512;

let warned = false;
function warnOnce(message: string): void {
    if (!warned)
        process.stderr.write(message);
    warned = true;
}

export class Engine {
    readonly backend: string;
    readonly threads: number;
    /** autoact's engine helper addon (CPU only), when built: see `native-addon-build.ts`. */
    readonly helper?: EngineHelper;
    private readonly models = new Set<LoadedModel>();
    private computeTail: Promise<unknown> = Promise.resolve();

    /** @internal use `createEngine` */
    constructor(readonly llama: Llama, threads: number, useHelper = true) {
        this.backend = llama.gpu === false ? "cpu" : llama.gpu;
        this.threads = threads;
        // After getLlama(): the helper binds to the llama.cpp libraries node-llama-cpp loaded.
        if (this.backend === "cpu" && useHelper)
            this.helper = loadEngineHelper();
    }

    /** Loads a GGUF from a path or an `hf:` URI (downloaded once into `modelCacheDir()`). */
    async loadModel(source: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
        const filePath = await resolveModelSource(source);
        await checkGgufFile(filePath, "model");
        let model: LlamaModel;
        try {
            model = await this.llama.loadModel({
                modelPath: filePath,
                gpuLayers: this.backend === "cpu" || options.vocabOnly === true ? 0 : (options.gpuLayers ?? "auto"),
                vocabOnly: options.vocabOnly ?? false
            });
        } catch (error) {
            throw new InputError(`cannot load model ${filePath}: ${errorMessage(error).split("\n")[0]}`);
        }
        const loaded = new LoadedModel(this, model, filePath);
        this.models.add(loaded);
        model.onDispose.createListener(() => this.models.delete(loaded));
        return loaded;
    }

    /**
     * Runs native compute one batch at a time across all contexts of this engine: two
     * contexts decoding at once would each spin `threads` threads on the same cores.
     */
    withComputeLock<T>(fn: () => Promise<T>): Promise<T> {
        const run = this.computeTail.then(fn, fn);
        this.computeTail = run.catch(() => undefined);
        return run;
    }

    async dispose(): Promise<void> {
        for (const model of [...this.models])
            await model.dispose();
        await this.llama.dispose();
    }
}

export interface ModelInfo {
    backend: string;
    gpuLayers: number;
    totalLayers: number;
    trainContextSize: number;
    sizeBytes: number;
}

export class LoadedModel {
    readonly llama: Llama;
    readonly info: ModelInfo;
    private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
    private readonly checkedAdapters = new Set<string>();
    private readonly host: GeneratorHost;
    /** Generators made here and not yet disposed: they go before the model. */
    private readonly generators = new Set<Generator>();

    /** @internal use `Engine.loadModel` */
    constructor(readonly engine: Engine, readonly model: LlamaModel, readonly path: string) {
        this.llama = engine.llama;
        this.info = {
            backend: engine.backend,
            gpuLayers: model.gpuLayers,
            totalLayers: model.fileInsights.totalLayers,
            trainContextSize: model.trainContextSize,
            sizeBytes: fs.statSync(path).size
        };
        this.host = {
            llama: this.llama,
            model,
            promptTokens: (prompt) => this.promptTokens(prompt),
            vocabularySize: this.vocabularySize,
            grammarFor: (spec) => this.grammarFor(spec),
            isEog: (token) => model.isEogToken(token as Token)
        };
    }

    /** Token ids are 0 to vocabularySize - 1: llama.cpp's vocabulary is the GGUF's token list. */
    get vocabularySize(): number {
        return this.model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    }

    get eosToken(): number | undefined {
        return this.model.tokens.eos ?? undefined;
    }

    get bosToken(): number | undefined {
        return this.model.tokens.bos ?? undefined;
    }

    /** Tokenizes without adding BOS; `special` parses special-token text like `<s>` (default false). */
    tokenize(text: string, options: { special?: boolean } = {}): number[] {
        return this.model.tokenize(text, options.special ?? false);
    }

    detokenize(tokens: number[], options: { special?: boolean } = {}): string {
        return this.model.detokenize(tokens as Token[], options.special ?? false);
    }

    /**
     * A prompt's tokens as text, for servers that take text (Ollama): they tokenize it with
     * special tokens and add BOS where the model asks for one, so that BOS is left out of the
     * text only then (a ChatML prompt starts with a BOS its model does not add). The inverse of
     * `promptTokens`.
     */
    promptText(tokens: number[]): string {
        const bos = this.model.tokens.bos;
        const serverAdds = bos != null && this.model.tokens.shouldPrependBosToken && tokens[0] === bos;
        return this.model.detokenize((serverAdds ? tokens.slice(1) : tokens) as Token[], true);
    }

    /** Token ids of a request's prompt: text is tokenized with special tokens, BOS prepended when the model wants one. */
    promptTokens(prompt: string | number[]): number[] {
        if (typeof prompt !== "string")
            return prompt;
        const tokens = this.model.tokenize(prompt, true);
        const bos = this.model.tokens.bos;
        if (bos != null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos)
            tokens.unshift(bos);
        return tokens;
    }

    /** A context with `parallel` sequences and a request queue. */
    async createGenerator(options: GeneratorOptions = {}): Promise<Generator> {
        const parallel = options.parallel ?? 1;
        if (!Number.isInteger(parallel) || parallel < 1)
            throw new InputError(`invalid parallel sequence count ${parallel}`);
        const contextSize = options.contextSize ?? Math.min(4096, this.model.trainContextSize || 4096);
        const batchSize = options.batchSize ?? defaultBatchSize;
        const context = await this.createContext({ sequences: parallel, contextSize, batchSize, adapters: options.adapters ?? [], flashAttention: options.flashAttention });
        const lock = <T>(fn: () => Promise<T>) => this.engine.withComputeLock(fn);
        let backend: DecodeBackend = new NodeLlamaBackend(context, lock);
        const helper = this.engine.helper;
        if (helper != null) {
            try {
                backend = HelperBackend.attach({
                    context, computeLock: lock, helper, threads: this.engine.threads,
                    cells: context.contextSize * parallel, sequences: parallel, capacity: Math.min(helperStepLimit, context.batchSize)
                });
            } catch (error) {
                warnOnce(`autoact: engine helper not used for this context (${errorMessage(error)}); using node-llama-cpp's own calls\n`);
            }
        }
        const generator: Generator = new Generator(this.host, { tokens: backend }, { parallel, contextSize: context.contextSize, batchSize: context.batchSize },
            async () => {
                this.generators.delete(generator);
                await context.dispose();
            });
        this.generators.add(generator);
        // The model (or the engine) may dispose the context under a running generator.
        context.onDispose.createListener(() => generator.contextDisposed());
        return generator;
    }

    /**
     * A generator whose requests run on OpenAI-compatible servers (see `RemoteBackend`): the
     * same queue and prompts as a local one (this model formats and tokenizes them; load it
     * with `vocabOnly`), `concurrency` requests in flight per endpoint.
     */
    async createRemoteGenerator(options: RemoteOptions & { adapters?: AdapterSpec[]; contextSize?: number }): Promise<Generator> {
        const contextSize = options.contextSize ?? Math.min(4096, this.model.trainContextSize || 4096);
        const backend = await RemoteBackend.connect({
            ...options,
            contextSize,
            detokenize: (tokens) => this.promptText(tokens),
            tokenize: (text) => this.tokenize(text)
        });
        const generator: Generator = new Generator(this.host, { requests: backend }, { parallel: backend.slots, contextSize, batchSize: 0 },
            async () => void this.generators.delete(generator));
        this.generators.add(generator);
        return generator;
    }

    /**
     * Log-probability of each token given all tokens before it, for tokens[from..]
     * (`from` defaults to 1: the first token has no prefix). Uses a context of its own.
     */
    async scoreTokens(tokens: number[], options: { adapters?: AdapterSpec[]; from?: number } = {}): Promise<number[]> {
        checkTokenIds(tokens, this.vocabularySize, "tokens to score");
        const from = Math.max(1, options.from ?? 1);
        if (tokens.length <= from)
            return [];
        const batchSize = Math.min(defaultBatchSize, tokens.length);
        const context = await this.createContext({ sequences: 1, contextSize: tokens.length + 1, batchSize, adapters: options.adapters ?? [] });
        const raw = rawContext(context);
        const helper = this.engine.helper;
        let handle: EngineHelperHandle | undefined;
        // The threadpool goes before the native context, also when the model disposes it first.
        const release = () => {
            if (handle != null)
                helper!.release(handle);
            handle = undefined;
        };
        context.onDispose.createListener(release);
        const sampler = createRawSampler(this.llama, this.model, { temperature: 0 });
        const scores: number[] = [];
        try {
            try {
                handle = helper?.attach(raw, this.engine.threads, context.contextSize, 1, 1);
            } catch {
                // the generator path reports this; scoring just runs without the threadpool
            }
            for (let start = 0; start < tokens.length - 1; start += batchSize) {
                const chunk = tokens.slice(start, Math.min(start + batchSize, tokens.length - 1));
                // Logits at position p predict token p + 1; only positions >= from - 1 are needed.
                const wanted: number[] = [];
                for (let i = 0; i < chunk.length; i++)
                    if (start + i + 1 >= from)
                        wanted.push(i);
                // The context is kept for each native call: the model may be disposed meanwhile.
                const indexes = await this.engine.withComputeLock(() => whileContextAlive(context, async () => {
                    raw.initBatch(chunk.length);
                    const indexes = raw.addToBatch(0, start, Uint32Array.from(chunk), Uint32Array.from(wanted));
                    await raw.decodeBatch();
                    return indexes;
                }));
                for (let k = 0; k < wanted.length; k++) {
                    const target = tokens[start + wanted[k]! + 1]!;
                    const [, probabilities] = await whileContextAlive(context, () => raw.sampleToken(indexes[k]!, sampler, true));
                    scores.push(Math.log(findProbability(probabilities ?? [], target)));
                }
            }
        } finally {
            sampler.dispose();
            release();
            await context.dispose();
        }
        return scores;
    }

    /** Disposes the generators made here (their unfinished requests fail), then the model. */
    async dispose(): Promise<void> {
        await Promise.allSettled([...this.generators].map((generator) => generator.dispose()));
        await this.model.dispose();
    }

    /** @internal */
    async grammarFor(spec: NonNullable<GenerationRequest["grammar"]>): Promise<LlamaGrammar> {
        const key = JSON.stringify(spec);
        let grammar = this.grammars.get(key);
        if (grammar == null) {
            grammar = ("gbnf" in spec
                ? this.llama.createGrammar({ grammar: spec.gbnf })
                : this.llama.createGrammarForJsonSchema(spec.jsonSchema as never) as Promise<LlamaGrammar>)
                .catch((error: unknown) => {
                    this.grammars.delete(key);
                    throw new InputError(`invalid ${"gbnf" in spec ? "GBNF grammar" : "JSON schema"}: ${errorMessage(error).split("\n")[0]}`);
                });
            this.grammars.set(key, grammar);
        }
        return await grammar;
    }

    private async createContext(options: { sequences: number; contextSize: number; batchSize: number; adapters: AdapterSpec[]; flashAttention?: boolean }): Promise<LlamaContext> {
        for (const adapter of options.adapters)
            await this.checkAdapter(adapter);
        try {
            return await this.model.createContext({
                sequences: options.sequences,
                contextSize: options.contextSize,
                batchSize: Math.min(options.batchSize, options.contextSize * options.sequences),
                threads: this.engine.threads,
                flashAttention: options.flashAttention,
                lora: options.adapters.length === 0 ? undefined : {
                    adapters: options.adapters.map((a) => ({ filePath: path.resolve(a.filePath), scale: a.scale ?? 1 }))
                },
                failedCreationRemedy: false
            });
        } catch (error) {
            throw new RuntimeFailure(`cannot create a context (${options.sequences} x ${options.contextSize} tokens) for ${this.path}: ${errorMessage(error).split("\n")[0]}`);
        }
    }

    /** llama.cpp aborts the process on some bad adapter files, so check them first. */
    private async checkAdapter(adapter: AdapterSpec): Promise<void> {
        const filePath = path.resolve(adapter.filePath);
        if (adapter.scale != null && !Number.isFinite(adapter.scale))
            throw new InputError(`adapter scale must be a finite number: ${filePath}`);
        if (this.checkedAdapters.has(filePath))
            return;
        // Its header, its architecture and each adapted tensor's shape against this model's.
        checkAdapterFitsBase(filePath, this.path);
        this.checkedAdapters.add(filePath);
    }
}

function findProbability(flat: number[], token: number): number {
    for (let i = 0; i < flat.length; i += 2)
        if (flat[i] === token)
            return flat[i + 1]!;
    return 0;
}
