import type { LlamaContext } from "node-llama-cpp";
import { RuntimeFailure, errorMessage } from "../util/errors.js";
import { rawContext, whileContextAlive, type EngineHelper, type EngineHelperHandle, type RawContext, type RawSampler } from "./native-access.js";

/**
 * One batch of tokens for a local llama context, filled by the generator's scheduler: token
 * i goes to sequence `sequences[i]` at `positions[i]`; `logits[i]` = 1 asks for its logits.
 */
export class TokenBatch {
    readonly tokens: Int32Array;
    readonly sequences: Int32Array;
    readonly positions: Int32Array;
    readonly logits: Int32Array;
    count = 0;

    constructor(readonly capacity: number) {
        this.tokens = new Int32Array(capacity);
        this.sequences = new Int32Array(capacity);
        this.positions = new Int32Array(capacity);
        this.logits = new Int32Array(capacity);
    }

    add(token: number, sequence: number, position: number, logits: boolean): number {
        const i = this.count++;
        this.tokens[i] = token;
        this.sequences[i] = sequence;
        this.positions[i] = position;
        this.logits[i] = logits ? 1 : 0;
        return i;
    }
}

/**
 * What the generator's scheduler needs from a local llama context: decode one batch, sample
 * at a batch index of the last decode, drop a sequence's cells. Two implementations: the
 * plain node-llama-cpp calls (worker thread per decode and per sample) and the engine helper
 * (persistent threadpool, small batches decoded and sampled on the calling thread).
 */
export interface DecodeBackend {
    /** "helper" or "node-llama-cpp" (said in benchmark results). */
    readonly name: string;
    decode(batch: TokenBatch): Promise<void>;
    /**
     * The next token at batch index `index` of the last decode (-1 = none). `plainGreedy`: the
     * sampler is greedy without a grammar, so an argmax gives the same token.
     */
    sample(index: number, sampler: RawSampler, plainGreedy: boolean): Promise<number> | number;
    /** Removes the sequence's KV cells from `from` on; false when llama.cpp cannot (then clear it all). */
    removeCells(sequence: number, from: number): boolean;
    /** Frees what the backend holds natively (before the context goes). */
    release(): void;
}

type ComputeLock = <T>(fn: () => Promise<T>) => Promise<T>;

/** node-llama-cpp's own addon calls: each decode and each sample is a hop to a libuv worker. */
export class NodeLlamaBackend implements DecodeBackend {
    readonly name: string = "node-llama-cpp";
    protected readonly raw: RawContext;
    /** node-llama-cpp's logit index for each batch index of the last worker decode. */
    private logitIndex: number[] = [];

    constructor(protected readonly context: LlamaContext, protected readonly computeLock: ComputeLock) {
        this.raw = rawContext(context);
    }

    async decode(batch: TokenBatch): Promise<void> {
        try {
            await this.computeLock(() => whileContextAlive(this.context, () => this.decodeOnWorker(batch)));
        } catch (error) {
            throw error instanceof RuntimeFailure ? error : new RuntimeFailure(`llama decode failed: ${errorMessage(error)}`);
        }
    }

    private async decodeOnWorker(batch: TokenBatch): Promise<void> {
        this.raw.initBatch(batch.count);
        this.logitIndex = [];
        // node-llama-cpp takes a sequence's tokens as one run with consecutive positions.
        for (let start = 0; start < batch.count;) {
            let end = start + 1;
            while (end < batch.count && batch.sequences[end] === batch.sequences[start] && batch.positions[end] === batch.positions[end - 1]! + 1)
                end++;
            const wanted: number[] = [];
            for (let i = start; i < end; i++)
                if (batch.logits[i] === 1)
                    wanted.push(i - start);
            const indexes = this.raw.addToBatch(batch.sequences[start]!, batch.positions[start]!,
                Uint32Array.from(batch.tokens.subarray(start, end)), Uint32Array.from(wanted));
            wanted.forEach((offset, k) => (this.logitIndex[start + offset] = indexes[k]!));
            start = end;
        }
        await this.raw.decodeBatch();
    }

    sample(index: number, sampler: RawSampler, _plainGreedy: boolean): Promise<number> | number {
        return whileContextAlive(this.context, () => this.raw.sampleToken(this.logitIndex[index]!, sampler));
    }

    removeCells(sequence: number, from: number): boolean {
        return this.raw.removeTokenCellsFromSequence(sequence, from, -1);
    }

    release(): void {}
}

/**
 * The engine helper: batches of up to `capacity` tokens (generation steps) are decoded and
 * sampled on the calling thread with the context's persistent threadpool; larger batches
 * (prompt chunks) take node-llama-cpp's worker so the event loop is never blocked for long.
 */
export class HelperBackend extends NodeLlamaBackend {
    override readonly name = "helper";
    private lastSync = false;
    private handle?: EngineHelperHandle;

    constructor(context: LlamaContext, computeLock: ComputeLock, private readonly helper: EngineHelper, handle: EngineHelperHandle, readonly capacity: number) {
        super(context, computeLock);
        this.handle = handle;
    }

    /** Attaches the helper to a context; throws when the helper refuses it. */
    static attach(options: { context: LlamaContext; computeLock: ComputeLock; helper: EngineHelper; threads: number; cells: number; sequences: number; capacity: number }): HelperBackend {
        const handle = options.helper.attach(rawContext(options.context), options.threads, options.cells, options.sequences, options.capacity);
        const backend = new HelperBackend(options.context, options.computeLock, options.helper, handle, options.capacity);
        // The threadpool must go before the native context (also when the model disposes it).
        options.context.onDispose.createListener(() => backend.release());
        return backend;
    }

    override async decode(batch: TokenBatch): Promise<void> {
        // Released = the context is being disposed: node-llama-cpp's calls would use freed memory too.
        this.handleOrThrow();
        if (batch.count > this.capacity) {
            this.lastSync = false;
            return await super.decode(batch);
        }
        this.lastSync = true;
        let status: number;
        try {
            status = await this.computeLock(() => whileContextAlive(this.context,
                () => this.helper.decode(this.handleOrThrow(), batch.tokens, batch.sequences, batch.positions, batch.logits, batch.count)));
        } catch (error) {
            throw error instanceof RuntimeFailure ? error : new RuntimeFailure(`llama decode failed: ${errorMessage(error)}`);
        }
        if (status !== 0)
            throw new RuntimeFailure(`llama decode failed: llama_decode returned ${status}${status === 1 ? " (no free KV cells)" : ""}`);
    }

    override sample(index: number, sampler: RawSampler, plainGreedy: boolean): Promise<number> | number {
        if (!this.lastSync)
            return super.sample(index, sampler, plainGreedy);
        const handle = this.handleOrThrow();
        return plainGreedy ? this.helper.argmax(handle, index) : this.helper.sample(handle, index, sampler);
    }

    private handleOrThrow(): EngineHelperHandle {
        if (this.handle == null)
            throw new RuntimeFailure("the context was disposed (its model or engine was disposed)");
        return this.handle;
    }

    override release(): void {
        if (this.handle != null) {
            this.helper.release(this.handle);
            this.handle = undefined;
        }
    }
}
