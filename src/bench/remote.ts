import os from "node:os";
import { startLlamaServer } from "../deploy/llama-server.js";
import { createEngine, type Engine, type GenerationRequest } from "../llm/engine.js";
import { findNativeBuild, ensureNativeBuild } from "../train/native-build.js";
import { InputError, RuntimeFailure } from "../util/errors.js";
import { positiveInteger } from "../util/checks.js";
import { readGgufInfo } from "../gguf/reader.js";
import { ggufVocabSize, resolveBenchModel } from "./models.js";
import { median, randomTokens } from "./stats.js";

/** The remote benchmark's defaults, for the library and the CLI alike. */
export const remoteBenchDefaults = { parallel: 8, prompt: 32, tg: 128, reps: 3, threads: 2 } as const;

/** Unset sizes take {@link remoteBenchDefaults}. */
export interface RemoteBenchOptions {
    /** A GGUF file of a trained model: see {@link benchRemote}. */
    model: string;
    /** Concurrent requests (and llama-server slots). */
    parallel?: number;
    /** Prompt tokens of each request. */
    prompt?: number;
    /** Generated tokens of each request. */
    tg?: number;
    /** Timed rounds of each client after one warm-up round. */
    reps?: number;
    /** llama-server's threads. */
    threads?: number;
    /** The llama-server executable. Defaults to the autoact native build's. */
    llamaServer?: string;
    /** The command line recorded in the result. Defaults to process.argv. */
    command?: string;
    /** Progress lines (for stderr). Defaults to none. */
    onProgress?: (message: string) => void;
}

export interface RemoteBenchResult {
    kind: "remote";
    timestamp: string;
    command: string;
    model: string;
    settings: Required<Omit<RemoteBenchOptions, "model" | "llamaServer" | "command" | "onProgress">>;
    load_avg: { before: number; after: number };
    /** Aggregate tokens/s of each round: autoact's remote generator, and plain concurrent POST /completion. */
    autoact: number[];
    completion: number[];
    /** median(autoact) / median(completion). */
    ratio: number;
}

/**
 * One plain `POST /completion` to llama-server: the tokens it predicted. A failed answer is a
 * failure, not a round of no tokens (which made the ratio NaN).
 */
export async function postCompletion(url: string, r: GenerationRequest): Promise<number> {
    const response = await fetch(`${url}/completion`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: r.prompt, n_predict: r.maxTokens, ignore_eos: true, temperature: r.temperature, seed: r.seed, top_k: 0, min_p: 0, cache_prompt: true })
    });
    const text = await response.text();
    if (!response.ok)
        throw new RuntimeFailure(`llama-server POST /completion answered HTTP ${response.status}: ${text.trim().split("\n")[0]!.slice(0, 300)}`);
    let predicted: unknown;
    try {
        predicted = (JSON.parse(text) as { tokens_predicted?: unknown }).tokens_predicted;
    } catch {
        // not JSON: reported below with the text
    }
    if (typeof predicted !== "number" || !Number.isFinite(predicted))
        throw new RuntimeFailure(`llama-server POST /completion answered without tokens_predicted: ${text.slice(0, 300)}`);
    return predicted;
}

/**
 * The remote path's throughput against llama-server's own `/completion` at the same
 * concurrency, on one llama-server: `parallel` requests at once, random prompt ids, `tg`
 * sampled tokens each (end-of-generation ignored), rounds alternating between the two clients.
 * The model must be a trained one: random weights (`synth:`) write stray bytes that are not
 * UTF-8, and llama-server answers those with HTTP 500 (on /completion too).
 */
export async function benchRemote(options: RemoteBenchOptions): Promise<RemoteBenchResult> {
    // before this command's own setup (a native build) loads the machine
    const loadBefore = os.loadavg()[0]!;
    const d = remoteBenchDefaults;
    const o = { parallel: options.parallel ?? d.parallel, prompt: options.prompt ?? d.prompt, tg: options.tg ?? d.tg, reps: options.reps ?? d.reps, threads: options.threads ?? d.threads };
    for (const [name, value] of Object.entries(o))
        positiveInteger(value, `--${name}`);
    if (options.model.startsWith("synth:"))
        throw new InputError(`--model ${options.model}: bench remote needs a trained model (random weights write bytes that are not UTF-8, which llama-server refuses with HTTP 500); give a GGUF file`);
    const progress = options.onProgress ?? (() => {});
    const modelFile = await resolveBenchModel(options.model);
    const binary = options.llamaServer ?? findNativeBuild("cpu", ["llamaServer"])?.llamaServer ?? (await ensureNativeBuild()).llamaServer;
    progress(`starting llama-server (${o.parallel} slots, ${o.threads} threads)`);
    const server = await startLlamaServer({ binary, model: modelFile, parallel: o.parallel, contextSize: o.prompt + o.tg + 16, threads: o.threads, readyTimeoutMs: 300_000 });
    let engine: Engine | undefined;
    try {
        engine = await createEngine({ gpu: "cpu", threads: 1, helper: false });
        const vocab = await engine.loadModel(modelFile, { vocabOnly: true });
        const generator = await vocab.createRemoteGenerator({ endpoints: [server.url], concurrency: o.parallel, retries: 0 });
        const vocabSize = ggufVocabSize(await readGgufInfo(modelFile));
        const requests = (round: number): GenerationRequest[] => Array.from({ length: o.parallel }, (_, i) => ({
            prompt: Array.from(randomTokens(o.prompt, vocabSize, round * 1000 + i)), maxTokens: o.tg, ignoreEos: true, temperature: 0.9, seed: i
        }));
        const ours = async (round: number) => {
            const started = performance.now();
            const results = await generator.generate(requests(round));
            return results.reduce((sum, r) => sum + r.generatedTokens, 0) / ((performance.now() - started) / 1000);
        };
        const theirs = async (round: number) => {
            const started = performance.now();
            const predicted = await Promise.all(requests(round).map((r) => postCompletion(server.url, r)));
            return predicted.reduce((sum, n) => sum + n, 0) / ((performance.now() - started) / 1000);
        };
        progress("warm-up");
        await ours(-1);
        await theirs(-2);
        const autoact: number[] = [];
        const completion: number[] = [];
        for (let rep = 0; rep < o.reps; rep++) {
            progress(`round ${rep + 1}/${o.reps}`);
            autoact.push(await ours(2 * rep));
            completion.push(await theirs(2 * rep + 1));
        }
        await generator.dispose();
        return {
            kind: "remote", timestamp: new Date().toISOString(), command: options.command ?? process.argv.join(" "), model: modelFile, settings: o,
            load_avg: { before: loadBefore, after: os.loadavg()[0]! }, autoact, completion, ratio: median(autoact) / median(completion)
        };
    } finally {
        await engine?.dispose();
        await server.stop();
    }
}
