import crypto from "node:crypto";
import type { LlamaGrammar, Token } from "node-llama-cpp";
import { loadedLlamaLib } from "./llama-lib.js";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { TokenBatch, type DecodeBackend } from "./decode-backend.js";
import { createRawSampler, rawGrammarState, type RawSampler } from "./native-access.js";
import { StopMatcher, cutAtStop, cutOffText } from "./stop-matcher.js";
import { checkSampling, checkTokenIds } from "./request-check.js";
import type { GenerationRequest, GenerationResult, GeneratorStats, StopReason } from "./types.js";

/** What the generator needs from the loaded model (kept narrow so the two files stay apart). */
export interface GeneratorHost {
    readonly llama: import("node-llama-cpp").Llama;
    readonly model: import("node-llama-cpp").LlamaModel;
    promptTokens(prompt: string | number[]): number[];
    /** Token ids are 0 to vocabularySize - 1. */
    readonly vocabularySize: number;
    grammarFor(spec: NonNullable<GenerationRequest["grammar"]>): Promise<LlamaGrammar>;
    isEog(token: number): boolean;
}

/**
 * A backend that runs whole requests (a remote server): the scheduler gives it one request
 * per slot; prefix reuse and stop strings are the server's (the slot keeps a prompt's
 * prefix on the same server slot).
 */
export interface RequestBackend {
    readonly name: string;
    run(request: GenerationRequest, prompt: number[], slot: number): Promise<GenerationResult>;
    release(): void;
}

/** The yield to the event loop at least this often (ms) while steps decode synchronously. */
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
    /** Greedy without a grammar: the backend may take the argmax instead of sampling. */
    plainGreedy: boolean;
    matcher?: StopMatcher;
    /** Tokens still to decode before the next sample. */
    feed: number[];
    generated: number[];
    /** The stop string that ended the request. */
    stoppedBy?: string;
    startedAt: number;
}

interface Slot {
    readonly id: number;
    /** Tokens whose KV cells this sequence holds (or the server slot's last prompt), at positions 0..n-1. */
    cached: number[];
    job?: Job;
    lastUsed: number;
}

export interface SchedulerOptions {
    /** Sequences (local) or concurrent requests (remote). */
    parallel: number;
    /** Tokens each sequence holds (prompt + generation). */
    contextSize: number;
    /** Most tokens one decode call takes. */
    batchSize: number;
}

/**
 * The one generator of the project: a queue and `parallel` slots over a backend. Each free
 * slot takes the queued request whose prompt shares the longest prefix with what the slot
 * holds (its KV prefix is kept). A token backend (a local llama context: node-llama-cpp's own
 * calls or the engine helper) is driven in steps: one batch holds the pending tokens of every
 * busy slot, one decode, then each slot samples with its own seeded sampler and its stop
 * strings are matched incrementally. A request backend (a remote server) runs one whole
 * request per slot.
 *
 * Reproducibility: a request's output depends on its own seed and never on what ran before
 * it (kept KV prefixes, earlier samplers). It can depend on which requests decode beside it
 * in a step: llama.cpp computes a one-token batch with other kernels than a larger one, and
 * attention spans the KV cells of the co-batched sequences, so float rounding differs and a
 * sampled token near a tie can flip. `parallel: 1` makes sampled rows bit-reproducible.
 */
export class Generator {
    readonly parallel: number;
    readonly contextSize: number;
    readonly batchSize: number;
    readonly stats: GeneratorStats = { promptTokens: 0, generatedTokens: 0, reusedTokens: 0, busyMs: 0 };

    private readonly slots: Slot[];
    private readonly queue: Job[] = [];
    private readonly batch: TokenBatch;
    private loop?: Promise<void>;
    /** Why the generator takes no more steps (disposed, or its context lost): what its requests fail with. */
    private closed?: string;
    private disposing?: Promise<void>;
    private useCounter = 0;
    private readonly tokens?: DecodeBackend;
    private readonly requests?: RequestBackend;
    private running = 0;
    private busySince = 0;

    /** @internal use `LoadedModel.createGenerator` or `createRemoteGenerator` */
    constructor(
        private readonly host: GeneratorHost,
        backend: { tokens: DecodeBackend } | { requests: RequestBackend },
        options: SchedulerOptions,
        private readonly onDispose: () => Promise<void> = async () => {}
    ) {
        this.parallel = options.parallel;
        this.contextSize = options.contextSize;
        this.batchSize = options.batchSize;
        if ("tokens" in backend)
            this.tokens = backend.tokens;
        else
            this.requests = backend.requests;
        this.batch = new TokenBatch(this.tokens != null ? this.batchSize : 0);
        this.slots = Array.from({ length: this.parallel }, (_, id) => ({ id, cached: [], lastUsed: 0 }));
    }

    /** The backend's name: "helper", "node-llama-cpp" or the remote backend's. */
    get backendName(): string {
        return this.tokens?.name ?? this.requests!.name;
    }

    /** Whether this generator runs on autoact's engine helper (persistent threadpool, main-thread steps). */
    get accelerated(): boolean {
        return this.tokens?.name === "helper";
    }

    /** Queues one request; many callers may await at once. */
    complete(request: GenerationRequest): Promise<GenerationResult> {
        if (this.closed != null)
            return Promise.reject(new RuntimeFailure(this.closed));
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

    /** Runs all requests on the parallel slots; results in request order. */
    async generate(requests: GenerationRequest[], options: { onResult?: (index: number, result: GenerationResult) => void } = {}): Promise<GenerationResult[]> {
        return await Promise.all(requests.map(async (request, index) => {
            const result = await this.complete(request);
            options.onResult?.(index, result);
            return result;
        }));
    }

    /** Fails every request not finished (queued or running) and frees the context. */
    dispose(): Promise<void> {
        this.disposing ??= (async () => {
            this.close("generator disposed");
            // The loop stops after its step and fails the requests still on a slot.
            await this.loop?.catch(() => undefined);
            this.tokens?.release();
            this.requests?.release();
            await this.onDispose();
        })();
        return this.disposing;
    }

    /**
     * @internal The context is going away under the generator (its model or engine is being
     * disposed): no further step; the step in flight keeps the context until it ends.
     */
    contextDisposed(): void {
        this.close("generator's model disposed");
    }

    private close(reason: string): void {
        if (this.closed != null)
            return;
        this.closed = reason;
        for (const job of this.queue.splice(0))
            job.reject(new RuntimeFailure(`${reason} before the request ran`));
    }

    private makeJob(request: GenerationRequest): Job {
        const prompt = this.host.promptTokens(request.prompt);
        if (prompt.length === 0)
            throw new InputError("generation request has an empty prompt");
        if (typeof request.prompt !== "string")
            checkTokenIds(prompt, this.host.vocabularySize, "generation request's prompt");
        const maxTokens = request.maxTokens ?? 256;
        if (!Number.isInteger(maxTokens) || maxTokens < 0)
            throw new InputError(`generation request has invalid maxTokens ${maxTokens}`);
        checkSampling(request);
        return {
            request, prompt, maxTokens,
            stops: (request.stop ?? []).filter((s) => s.length > 0),
            grammarStops: [],
            trimEnd: false,
            resolve: () => undefined,
            reject: () => undefined,
            plainGreedy: (request.temperature ?? 0) === 0 && request.grammar == null,
            feed: [],
            generated: [],
            startedAt: 0
        };
    }

    private kick(): void {
        if (this.loop != null)
            return;
        this.loop = (this.requests != null ? this.dispatch() : this.run())
            .catch((error) => this.failAll(error))
            .finally(() => {
                this.loop = undefined;
                if (this.queue.length > 0 && this.closed == null && this.slots.some((slot) => slot.job == null))
                    this.kick();
            });
    }

    /** Token backends: one step after another while any slot is busy. */
    private async run(): Promise<void> {
        let lastYield = performance.now();
        while (this.closed == null) {
            await this.assignQueued();
            const busy = this.slots.filter((slot) => slot.job != null);
            if (busy.length === 0)
                return;
            const started = performance.now();
            await this.step(busy);
            const ended = performance.now();
            this.stats.busyMs += ended - started;
            // Synchronous steps never give the event loop a turn (new requests, I/O, timers).
            if (ended - lastYield >= yieldEveryMs) {
                await new Promise<void>((resolve) => setImmediate(resolve));
                lastYield = performance.now();
            }
        }
        // Closed: requests on a slot get no further step.
        for (const slot of this.slots)
            if (slot.job != null)
                this.fail(slot, new RuntimeFailure(this.closed));
    }

    /** Gives free slots queued requests, longest shared prefix first. */
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
            job!.startedAt = performance.now();
            best!.slot.lastUsed = ++this.useCounter;
            if (this.requests != null)
                this.startRemote(job!, best!.slot, best!.prefix);
            else
                await this.start(job!, best!.slot, best!.prefix);
        }
    }

    /** Request backends: hand out queued requests while slots are free; each frees its slot when done. */
    private async dispatch(): Promise<void> {
        await this.assignQueued();
    }

    private startRemote(job: Job, slot: Slot, prefix: number): void {
        // As a local sequence: the prompt and the generation share `contextSize` tokens.
        const room = this.contextSize - job.prompt.length;
        if (room <= 0) {
            job.resolve({ text: "", tokens: [], stopReason: "contextFull", promptTokens: job.prompt.length, generatedTokens: 0, timeMs: 0 });
            return;
        }
        slot.job = job;
        if (this.running++ === 0)
            this.busySince = performance.now();
        this.stats.reusedTokens += prefix;
        const clamped = job.maxTokens > room;
        this.requests!.run({ ...job.request, maxTokens: Math.min(job.maxTokens, room) }, job.prompt, slot.id).then(
            (result) => {
                this.stats.promptTokens += result.promptTokens - prefix;
                this.stats.generatedTokens += result.generatedTokens;
                job.resolve(clamped && result.stopReason === "maxTokens" ? { ...result, stopReason: "contextFull" } : result);
            },
            (error: unknown) => job.reject(error)
        ).finally(() => {
            slot.job = undefined;
            slot.cached = job.prompt;
            if (--this.running === 0)
                this.stats.busyMs += performance.now() - this.busySince;
            if (this.closed == null && this.queue.length > 0)
                this.kick();
        });
    }

    private async start(job: Job, slot: Slot, prefix: number): Promise<void> {
        try {
            if (job.prompt.length >= this.contextSize) {
                this.finish(job, slot, "contextFull");
                return;
            }
            // Keep the shared prefix, but always evaluate at least one token to get logits.
            let keep = Math.min(prefix, job.prompt.length - 1);
            if (keep < slot.cached.length && !this.tokens!.removeCells(slot.id, keep)) {
                this.tokens!.removeCells(slot.id, 0);
                keep = 0;
            }
            slot.cached.length = keep;
            this.stats.reusedTokens += keep;
            job.feed = job.prompt.slice(keep);
            let grammar: LlamaGrammar | undefined;
            if (job.request.grammar != null) {
                grammar = await this.host.grammarFor(job.request.grammar);
                // the model may have gone while the grammar compiled
                if (this.closed != null)
                    throw new RuntimeFailure(this.closed);
                job.grammarStops = grammar.stopGenerationTriggers
                    .map((trigger) => (typeof trigger === "string" ? trigger : Array.isArray(trigger) ? "" : trigger.toString()))
                    .filter((trigger) => trigger.length > 0);
                job.trimEnd = grammar.trimWhitespaceSuffix;
            }
            const model = this.host.model;
            job.matcher = new StopMatcher([...job.stops, ...job.grammarStops],
                (tokens, last) => model.detokenize(tokens as Token[], false, last as Token[]));
            // A sampler of its own, seeded by the request alone: what ran before never changes it.
            job.sampler = createRawSampler(this.host.llama, model, {
                temperature: job.request.temperature ?? 0,
                topK: job.request.topK,
                topP: job.request.topP,
                seed: job.request.seed ?? crypto.randomInt(0, 2 ** 31),
                grammarEvaluationState: grammar == null
                    ? undefined
                    : rawGrammarState(new (loadedLlamaLib().LlamaGrammarEvaluationState)({ model, grammar }))
            });
            slot.job = job;
            if (job.maxTokens === 0)
                this.finish(job, slot, "maxTokens");
        } catch (error) {
            slot.job = undefined;
            job.sampler?.dispose();
            job.reject(error);
        }
    }

    /** One batch: every busy slot's pending tokens (decoding ones first), one decode, then sampling. */
    private async step(busy: Slot[]): Promise<void> {
        busy.sort((a, b) => a.job!.feed.length - b.job!.feed.length);
        const batch = this.batch;
        batch.count = 0;
        const sampled: { slot: Slot; index: number }[] = [];
        const included: Slot[] = [];
        for (const slot of busy) {
            const room = this.batchSize - batch.count;
            if (room === 0)
                break;
            const job = slot.job!;
            const count = Math.min(job.feed.length, room);
            const complete = count === job.feed.length;
            const start = slot.cached.length;
            for (let i = 0; i < count; i++) {
                const index = batch.add(job.feed[i]!, slot.id, start + i, complete && i === count - 1);
                slot.cached.push(job.feed[i]!);
                if (complete && i === count - 1)
                    sampled.push({ slot, index });
            }
            if (job.generated.length === 0)
                this.stats.promptTokens += count;
            job.feed = complete ? [] : job.feed.slice(count);
            included.push(slot);
        }
        try {
            await this.tokens!.decode(batch);
        } catch (error) {
            for (const slot of included) {
                this.resetSlot(slot);
                this.fail(slot, error instanceof RuntimeFailure ? error : new RuntimeFailure(`llama decode failed: ${errorMessage(error)}`));
            }
            return;
        }
        // All samples before the next decode (a synchronous backend reads this decode's logits;
        // worker samples run together).
        const tokens = await Promise.all(sampled.map(async ({ slot }, k) => {
            try {
                return await this.tokens!.sample(sampled[k]!.index, slot.job!.sampler!, slot.job!.plainGreedy);
            } catch (error) {
                return new RuntimeFailure(`sampling failed: ${errorMessage(error)}`);
            }
        }));
        sampled.forEach(({ slot }, k) => {
            const token = tokens[k]!;
            if (token instanceof RuntimeFailure)
                this.fail(slot, token);
            else
                this.accept(slot, token);
        });
    }

    private accept(slot: Slot, token: number): void {
        const job = slot.job!;
        if (token < 0 || (this.host.isEog(token) && job.request.ignoreEos !== true)) {
            this.finish(job, slot, "eos");
            return;
        }
        job.generated.push(token);
        this.stats.generatedTokens++;
        const stop = job.matcher!.push(token);
        if (stop != null) {
            job.stoppedBy = stop;
            this.finish(job, slot, job.stops.includes(stop) ? "stop" : "eos");
        } else if (job.generated.length >= job.maxTokens) {
            this.finish(job, slot, "maxTokens");
        } else if (slot.cached.length >= this.contextSize) {
            this.finish(job, slot, "contextFull");
        } else {
            job.feed = [token];
        }
    }

    private finish(job: Job, slot: Slot, stopReason: StopReason): void {
        slot.job = undefined;
        job.sampler?.dispose();
        // One full detokenization per request; a stop string found on the way is cut here.
        let text = this.host.model.detokenize(job.generated as Token[]);
        const stops = [...job.stops, ...job.grammarStops];
        if (job.stoppedBy != null)
            text = cutAtStop(text, stops).text;
        else if (stopReason === "maxTokens" || stopReason === "contextFull")
            text = cutOffText(text, stops);
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
            this.tokens?.removeCells(slot.id, 0);
        } catch {
            // context already unusable: the slot's cache list is what matters
        }
        slot.cached = [];
    }

    private failAll(error: unknown): void {
        for (const slot of this.slots) {
            if (slot.job != null && this.tokens != null) {
                this.resetSlot(slot);
                this.fail(slot, error);
            }
        }
        for (const job of this.queue.splice(0))
            job.reject(error);
    }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
    const n = Math.min(a.length, b.length);
    let i = 0;
    while (i < n && a[i] === b[i])
        i++;
    return i;
}
