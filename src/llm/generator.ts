import crypto from "node:crypto";
import { LlamaGrammarEvaluationState, type LlamaContext, type LlamaGrammar, type Token } from "node-llama-cpp";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { createRawSampler, rawContext, rawGrammarState, type EngineHelper, type EngineHelperHandle, type RawContext, type RawSampler } from "./native-access.js";
import type { GenerationRequest, GenerationResult, GeneratorStats, StopReason } from "./types.js";

/** What the generator needs from the loaded model (kept narrow so the two files stay apart). */
export interface GeneratorHost {
    readonly llama: import("node-llama-cpp").Llama;
    readonly model: import("node-llama-cpp").LlamaModel;
    promptTokens(prompt: string | number[]): number[];
    grammarFor(spec: NonNullable<GenerationRequest["grammar"]>): Promise<LlamaGrammar>;
    isEog(token: number): boolean;
    /** Serializes native compute of all contexts of one engine, so they never fight for cores. */
    withComputeLock<T>(fn: () => Promise<T>): Promise<T>;
    /** CPU threads of the engine (the size of each context's threadpool). */
    readonly threads: number;
    /** autoact's engine helper addon, when built and on CPU. */
    readonly helper?: EngineHelper;
}

/**
 * Batches of at most this many tokens are decoded on the main thread (no worker hop): a
 * generation step of every sequence; prompt chunks go to node-llama-cpp's worker thread
 * so the event loop is never blocked for long.
 */
const syncDecodeLimit = 64;
/** The loop yields to the event loop at least this often (ms) while decoding synchronously. */
const yieldEveryMs = 4;

interface Job {
    request: GenerationRequest;
    prompt: number[];
    maxTokens: number;
    stops: string[];
    /** Stop strings of the grammar (e.g. the JSON grammar's trailing newlines): the output is complete. */
    grammarStops: string[];
    trimEnd: boolean;
    resolve: (result: GenerationResult) => void;
    reject: (error: unknown) => void;
    sampler?: RawSampler;
    grammar?: LlamaGrammar;
    /** Tokens still to decode before the next sample. */
    feed: number[];
    generated: number[];
    text: string;
    /** `text` was cut at a stop string. */
    cut: boolean;
    startedAt: number;
}

interface Slot {
    readonly id: number;
    /** Tokens whose KV cells this sequence holds, at positions 0..n-1. */
    cached: number[];
    job?: Job;
    lastUsed: number;
}

/**
 * One llama context with `parallel` sequences and a queue. A single loop fills one batch
 * with the pending tokens of every busy sequence, decodes it with one native call, samples
 * each sequence, and hands free sequences the next queued request, preferring the sequence
 * whose cached tokens share the longest prefix with the request (its KV prefix is kept).
 */
export class Generator {
    readonly parallel: number;
    readonly contextSize: number;
    readonly batchSize: number;
    readonly stats: GeneratorStats = { promptTokens: 0, generatedTokens: 0, reusedTokens: 0, busyMs: 0 };

    private readonly raw: RawContext;
    private readonly slots: Slot[];
    private readonly queue: Job[] = [];
    private loop?: Promise<void>;
    private disposed = false;
    private useCounter = 0;
    private readonly helper?: EngineHelper;
    private helperHandle?: EngineHelperHandle;
    private fast?: { tokens: Int32Array; sequences: Int32Array; positions: Int32Array; logits: Int32Array };

    /** @internal use `LoadedModel.createGenerator` */
    constructor(private readonly host: GeneratorHost, readonly context: LlamaContext, options: { parallel: number; contextSize: number; batchSize: number }) {
        this.parallel = options.parallel;
        this.contextSize = options.contextSize;
        this.batchSize = options.batchSize;
        this.raw = rawContext(context);
        this.slots = Array.from({ length: this.parallel }, (_, id) => ({ id, cached: [], lastUsed: 0 }));
        if (host.helper != null) {
            const capacity = Math.min(syncDecodeLimit, this.batchSize);
            try {
                this.helperHandle = host.helper.attach(this.raw, host.threads, this.contextSize * this.parallel, this.parallel, capacity);
            } catch (error) {
                warnOnce(`autoact: engine helper not used for this context (${errorMessage(error)}); using node-llama-cpp's own calls\n`);
            }
        }
        if (this.helperHandle != null) {
            const capacity = Math.min(syncDecodeLimit, this.batchSize);
            this.helper = host.helper;
            this.fast = { tokens: new Int32Array(capacity), sequences: new Int32Array(capacity), positions: new Int32Array(capacity), logits: new Int32Array(capacity) };
            // The threadpool must go before the native context (also when the model disposes it).
            context.onDispose.createListener(() => this.releaseHelper());
        }
    }

    /** Whether this generator runs on autoact's engine helper (persistent threadpool, main-thread steps). */
    get accelerated(): boolean {
        return this.helperHandle != null;
    }

    /** Queues one request; many callers may await at once. */
    complete(request: GenerationRequest): Promise<GenerationResult> {
        if (this.disposed)
            return Promise.reject(new RuntimeFailure("generator is disposed"));
        let job: Job;
        try {
            job = this.makeJob(request);
        } catch (error) {
            return Promise.reject(error);
        }
        const done = new Promise<GenerationResult>((resolve, reject) => {
            job.resolve = resolve;
            job.reject = reject;
        });
        this.queue.push(job);
        this.kick();
        return done;
    }

    /** Runs all requests on the parallel sequences; results in request order. */
    async generate(requests: GenerationRequest[], options: { onResult?: (index: number, result: GenerationResult) => void } = {}): Promise<GenerationResult[]> {
        return await Promise.all(requests.map(async (request, index) => {
            const result = await this.complete(request);
            options.onResult?.(index, result);
            return result;
        }));
    }

    async dispose(): Promise<void> {
        if (this.disposed)
            return;
        this.disposed = true;
        for (const job of this.queue.splice(0))
            job.reject(new RuntimeFailure("generator disposed before the request ran"));
        await this.loop?.catch(() => undefined);
        this.releaseHelper();
        await this.context.dispose();
    }

    private makeJob(request: GenerationRequest): Job {
        const prompt = this.host.promptTokens(request.prompt);
        if (prompt.length === 0)
            throw new InputError("generation request has an empty prompt");
        const maxTokens = request.maxTokens ?? 256;
        if (!Number.isInteger(maxTokens) || maxTokens < 0)
            throw new InputError(`generation request has invalid maxTokens ${maxTokens}`);
        return {
            request,
            prompt,
            maxTokens,
            stops: (request.stop ?? []).filter((s) => s.length > 0),
            grammarStops: [],
            trimEnd: false,
            resolve: () => undefined,
            reject: () => undefined,
            feed: [],
            generated: [],
            text: "",
            cut: false,
            startedAt: 0
        };
    }

    private kick(): void {
        if (this.loop != null)
            return;
        this.loop = this.run()
            .catch((error) => this.failAll(error))
            .finally(() => {
                this.loop = undefined;
                if (this.queue.length > 0 && !this.disposed)
                    this.kick();
            });
    }

    private releaseHelper(): void {
        if (this.helperHandle != null) {
            this.helper!.release(this.helperHandle);
            this.helperHandle = undefined;
        }
    }

    private async run(): Promise<void> {
        let lastYield = performance.now();
        while (!this.disposed) {
            await this.assignQueued();
            const busy = this.slots.filter((slot) => slot.job != null);
            if (busy.length === 0)
                return;
            const started = performance.now();
            const wasSync = await this.step(busy);
            const ended = performance.now();
            this.stats.busyMs += ended - started;
            // Synchronous steps never give the event loop a turn (new requests, I/O, timers).
            if (wasSync && ended - lastYield >= yieldEveryMs) {
                await new Promise<void>((resolve) => setImmediate(resolve));
                lastYield = performance.now();
            } else if (!wasSync) {
                lastYield = ended;
            }
        }
    }

    /** Gives free sequences queued requests, longest shared prefix first. */
    private async assignQueued(): Promise<void> {
        while (this.queue.length > 0) {
            const free = this.slots.filter((slot) => slot.job == null);
            if (free.length === 0)
                return;
            let best: { job: number; slot: Slot; prefix: number } | undefined;
            const candidates = Math.min(this.queue.length, 64);
            for (let j = 0; j < candidates; j++) {
                const prompt = this.queue[j]!.prompt;
                for (const slot of free) {
                    const prefix = commonPrefix(slot.cached, prompt);
                    if (best == null || prefix > best.prefix || (prefix === best.prefix && j === best.job && slot.lastUsed < best.slot.lastUsed))
                        best = { job: j, slot, prefix };
                }
            }
            const [job] = this.queue.splice(best!.job, 1);
            await this.start(job!, best!.slot, best!.prefix);
        }
    }

    private async start(job: Job, slot: Slot, prefix: number): Promise<void> {
        try {
            job.startedAt = performance.now();
            if (job.prompt.length >= this.contextSize) {
                this.finish(job, slot, "contextFull");
                return;
            }
            // Keep the shared prefix, but always evaluate at least one token to get logits.
            let keep = Math.min(prefix, job.prompt.length - 1);
            if (keep < slot.cached.length && !this.raw.removeTokenCellsFromSequence(slot.id, keep, -1)) {
                this.raw.removeTokenCellsFromSequence(slot.id, 0, -1);
                keep = 0;
            }
            slot.cached.length = keep;
            this.stats.reusedTokens += keep;
            job.feed = job.prompt.slice(keep);
            if (job.request.grammar != null) {
                job.grammar = await this.host.grammarFor(job.request.grammar);
                job.grammarStops = job.grammar.stopGenerationTriggers
                    .map((trigger) => (typeof trigger === "string" ? trigger : Array.isArray(trigger) ? "" : trigger.toString()))
                    .filter((trigger) => trigger.length > 0);
                job.trimEnd = job.grammar.trimWhitespaceSuffix;
            }
            const temperature = job.request.temperature ?? 0;
            job.sampler = createRawSampler(this.host.llama, this.host.model, {
                temperature,
                topK: job.request.topK,
                topP: job.request.topP,
                seed: job.request.seed ?? crypto.randomInt(0, 2 ** 31),
                grammarEvaluationState: job.grammar == null
                    ? undefined
                    : rawGrammarState(new LlamaGrammarEvaluationState({ model: this.host.model, grammar: job.grammar }))
            });
            slot.job = job;
            slot.lastUsed = ++this.useCounter;
            if (job.maxTokens === 0)
                this.finish(job, slot, "maxTokens");
        } catch (error) {
            slot.job = undefined;
            job.sampler?.dispose();
            job.reject(error);
        }
    }

    /**
     * One batch: every busy sequence's pending tokens (decoding ones first), one decode, then
     * sampling. Returns whether it ran synchronously on the engine helper.
     */
    private async step(busy: Slot[]): Promise<boolean> {
        busy.sort((a, b) => a.job!.feed.length - b.job!.feed.length);
        const items: { slot: Slot; count: number; logitIndex: number }[] = [];
        let budget = this.batchSize;
        for (const slot of busy) {
            if (budget === 0)
                break;
            const count = Math.min(slot.job!.feed.length, budget);
            items.push({ slot, count, logitIndex: -1 });
            budget -= count;
        }
        const total = this.batchSize - budget;
        if (this.helperHandle != null && total <= this.fast!.tokens.length) {
            await this.fastStep(items, total);
            return true;
        }
        this.raw.initBatch(total);
        for (const item of items) {
            const job = item.slot.job!;
            const tokens = item.count === job.feed.length ? job.feed : job.feed.slice(0, item.count);
            const wantLogits = item.count === job.feed.length;
            const indexes = this.raw.addToBatch(item.slot.id, item.slot.cached.length, Uint32Array.from(tokens),
                wantLogits ? Uint32Array.of(item.count - 1) : new Uint32Array(0));
            if (wantLogits)
                item.logitIndex = indexes[0]!;
            if (job.generated.length === 0)
                this.stats.promptTokens += item.count;
            for (const token of tokens)
                item.slot.cached.push(token);
            job.feed = wantLogits ? [] : job.feed.slice(item.count);
        }
        try {
            await this.host.withComputeLock(() => this.raw.decodeBatch());
        } catch (error) {
            for (const item of items) {
                this.resetSlot(item.slot);
                this.fail(item.slot, new RuntimeFailure(`llama decode failed: ${errorMessage(error)}`));
            }
            return false;
        }
        await Promise.all(items.filter((item) => item.logitIndex >= 0).map(async (item) => {
            const job = item.slot.job!;
            let token: number;
            try {
                token = await this.raw.sampleToken(item.logitIndex, job.sampler!);
            } catch (error) {
                this.fail(item.slot, new RuntimeFailure(`sampling failed: ${errorMessage(error)}`));
                return;
            }
            this.accept(item.slot, token);
        }));
        return false;
    }

    /** A small batch decoded and sampled on this thread by the engine helper (no worker hops). */
    private async fastStep(items: { slot: Slot; count: number; logitIndex: number }[], total: number): Promise<void> {
        const { tokens, sequences, positions, logits } = this.fast!;
        let n = 0;
        for (const item of items) {
            const job = item.slot.job!;
            const wantLogits = item.count === job.feed.length;
            const start = item.slot.cached.length;
            for (let i = 0; i < item.count; i++) {
                const token = job.feed[i]!;
                tokens[n] = token;
                sequences[n] = item.slot.id;
                positions[n] = start + i;
                logits[n] = wantLogits && i === item.count - 1 ? 1 : 0;
                item.slot.cached.push(token);
                n++;
            }
            if (wantLogits)
                item.logitIndex = n - 1;
            if (job.generated.length === 0)
                this.stats.promptTokens += item.count;
            job.feed = wantLogits ? [] : job.feed.slice(item.count);
        }
        let status: number;
        try {
            status = await this.host.withComputeLock(async () => this.helper!.decode(this.helperHandle!, tokens, sequences, positions, logits, total));
        } catch (error) {
            this.decodeFailed(items, errorMessage(error));
            return;
        }
        if (status !== 0) {
            this.decodeFailed(items, `llama_decode returned ${status}${status === 1 ? " (no free KV cells)" : ""}`);
            return;
        }
        for (const item of items) {
            if (item.logitIndex < 0)
                continue;
            const job = item.slot.job!;
            if ((job.request.temperature ?? 0) === 0 && job.grammar == null) {
                this.accept(item.slot, this.helper!.argmax(this.helperHandle!, item.logitIndex));
                continue;
            }
            let token: number;
            try {
                token = this.helper!.sample(this.helperHandle!, item.logitIndex, job.sampler!);
            } catch (error) {
                this.fail(item.slot, new RuntimeFailure(`sampling failed: ${errorMessage(error)}`));
                continue;
            }
            this.accept(item.slot, token);
        }
    }

    private decodeFailed(items: { slot: Slot }[], why: string): void {
        for (const item of items) {
            this.resetSlot(item.slot);
            this.fail(item.slot, new RuntimeFailure(`llama decode failed: ${why}`));
        }
    }

    private accept(slot: Slot, token: number): void {
        const job = slot.job!;
        if (token < 0 || (this.host.isEog(token) && job.request.ignoreEos !== true)) {
            this.finish(job, slot, "eos");
            return;
        }
        job.generated.push(token);
        this.stats.generatedTokens++;
        if (job.stops.length > 0 || job.grammarStops.length > 0) {
            const before = job.text.length;
            job.text = this.host.model.detokenize(job.generated as Token[]);
            const all = [...job.stops, ...job.grammarStops];
            const longest = Math.max(...all.map((s) => s.length));
            const from = Math.max(0, Math.min(before, job.text.length) - longest - 4);
            let cut = -1;
            let byGrammar = false;
            for (const stop of all) {
                const at = job.text.indexOf(stop, from);
                if (at >= 0 && (cut < 0 || at < cut)) {
                    cut = at;
                    byGrammar = !job.stops.includes(stop);
                }
            }
            if (cut >= 0) {
                job.text = job.text.slice(0, cut);
                job.cut = true;
                this.finish(job, slot, byGrammar ? "eos" : "stop");
                return;
            }
        }
        if (job.generated.length >= job.maxTokens)
            this.finish(job, slot, "maxTokens");
        else if (slot.cached.length >= this.contextSize)
            this.finish(job, slot, "contextFull");
        else
            job.feed = [token];
    }

    private finish(job: Job, slot: Slot, stopReason: StopReason): void {
        slot.job = undefined;
        job.sampler?.dispose();
        let text = job.cut ? job.text : this.host.model.detokenize(job.generated as Token[]);
        if (job.trimEnd)
            text = text.trimEnd();
        job.resolve({
            text,
            tokens: job.generated,
            stopReason,
            promptTokens: job.prompt.length,
            generatedTokens: job.generated.length,
            timeMs: performance.now() - job.startedAt
        });
    }

    private fail(slot: Slot, error: unknown): void {
        const job = slot.job;
        slot.job = undefined;
        job?.sampler?.dispose();
        job?.reject(error);
    }

    private resetSlot(slot: Slot): void {
        try {
            this.raw.removeTokenCellsFromSequence(slot.id, 0, -1);
        } catch {
            // context already unusable: the slot's cache list is what matters
        }
        slot.cached = [];
    }

    private failAll(error: unknown): void {
        for (const slot of this.slots) {
            if (slot.job != null) {
                this.resetSlot(slot);
                this.fail(slot, error);
            }
        }
        for (const job of this.queue.splice(0))
            job.reject(error);
    }
}

let warned = false;
function warnOnce(message: string): void {
    if (!warned)
        process.stderr.write(message);
    warned = true;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
    const n = Math.min(a.length, b.length);
    let i = 0;
    while (i < n && a[i] === b[i])
        i++;
    return i;
}
