import path from "node:path";
import { readGgufInfo, ggufArchitecture } from "../gguf/reader.js";
import { gpuChoices } from "../llm/types.js";
import { createEngine, defaultBatchSize, defaultThreadCount, type Engine, type GenerationRequest, type Generator, type GpuChoice, type LoadedModel } from "../llm/engine.js";
import { defaultConfig } from "../pipeline/config-schema.js";
import { ensureNativeBuild, findNativeBuild, nativeBuildPatches, type NativeBackend } from "../train/native-build.js";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { positiveInteger } from "../util/checks.js";
import { collectFingerprint, watchGpuMemory, watchLoad } from "./fingerprint.js";
import { InterleavedLlamaBench, runLlamaBench, type LlamaBenchRun } from "./llama-bench.js";
import { ggufVocabSize, resolveBenchModel, resolveLoraSpecs } from "./models.js";
import { BENCH_RESULT_SCHEMA, type BenchResult, type BenchTest } from "./result.js";
import { mean, randomTokens, stddev } from "./stats.js";

export { gpuChoices };

/** The inference benchmark's defaults, for the library and the CLI alike. */
export const inferBenchDefaults = { pp: 512, tg: 128, reps: 5, parallel: [1, 2, 4, 8], batchSize: defaultBatchSize, seed: 42 } as const;

/** Unset sizes take {@link inferBenchDefaults}. */
export interface InferBenchOptions {
    /** A GGUF file, or `synth:PRESET[:TYPE]` (see `resolveBenchModel`). */
    model: string;
    /** Compute backend. Defaults to "auto" (the best node-llama-cpp finds, else CPU). */
    gpu?: GpuChoice;
    /** CPU threads. Defaults to the physical core count. */
    threads?: number;
    /** Prompt tokens of the pp test (one batch of up to `batchSize`, fresh context). */
    pp?: number;
    /** Tokens generated one at a time in the tg test. */
    tg?: number;
    /** Timed repetitions after one warm-up run. */
    reps?: number;
    /** Sequence counts for the aggregate generation test (1 reuses tg). */
    parallel?: number[];
    /** LoRA adapter files (or `zero:RANK`): adds tests with one adapter and with three sub-agent contexts. Defaults to none. */
    lora?: string[];
    /** Also run llama.cpp's own llama-bench with the same model, threads and sizes. Defaults to false. */
    compareLlamaBench?: boolean;
    /** The llama-bench executable. Defaults to the autoact native build's (built when missing). */
    llamaBench?: string;
    /**
     * "autoact" measures node-llama-cpp (and llama-bench beside it when compared); "llama-bench"
     * runs only llama-bench, for machines where node-llama-cpp has no binary for the backend
     * (the GPU suite without a CUDA prebuilt). Defaults to "autoact".
     */
    engine?: "autoact" | "llama-bench";
    /** Flash attention in the benchmark contexts and llama-bench -fa, set explicitly in both. Defaults to false. */
    flashAttention?: boolean;
    /** Tokens per decode call (n_batch = n_ubatch, as node-llama-cpp sets them); the engine's by default. */
    batchSize?: number;
    /** Seed of the random token ids. */
    seed?: number;
    /** The command line recorded in the result. Defaults to process.argv. */
    command?: string;
    /** Progress lines (for stderr). Defaults to none. */
    onProgress?: (message: string) => void;
}

interface Resolved {
    modelFile: string;
    gpu: GpuChoice;
    threads: number;
    pp: number;
    tg: number;
    reps: number;
    parallel: number[];
    lora: string[];
    batchSize: number;
    flashAttention: boolean;
    seed: number;
}

/** Checks every option before anything loads: bad input fails fast with one line. */
export async function resolveInferOptions(options: InferBenchOptions): Promise<Resolved> {
    const gpu = options.gpu ?? "auto";
    if (!(gpuChoices as readonly string[]).includes(gpu))
        throw new InputError(`unknown backend "${gpu}" for --gpu (expected ${gpuChoices.join(", ")})`);
    const threads = positiveInteger(options.threads ?? defaultThreadCount(), "--threads");
    const pp = positiveInteger(options.pp ?? inferBenchDefaults.pp, "--pp");
    const tg = positiveInteger(options.tg ?? inferBenchDefaults.tg, "--tg");
    const reps = positiveInteger(options.reps ?? inferBenchDefaults.reps, "--reps");
    // a batch larger than the prompt holds nothing more (llama-bench gets the same -b/-ub)
    const batchSize = Math.min(positiveInteger(options.batchSize ?? inferBenchDefaults.batchSize, "batch size"), pp);
    const parallel = options.parallel ?? [...inferBenchDefaults.parallel];
    if (parallel.length === 0)
        throw new InputError("--parallel needs at least one sequence count, e.g. 1,8");
    for (const n of parallel) {
        if (!Number.isInteger(n) || n < 1)
            throw new InputError(`--parallel ${String(n)}: sequence counts must be positive integers, e.g. 1,2,4,8`);
    }
    if (options.model == null || options.model === "")
        throw new InputError("--model is required: a GGUF file or synth:PRESET");
    const modelFile = await resolveBenchModel(options.model);
    const lora = await resolveLoraSpecs(options.lora ?? [], modelFile);
    const baseArch = ggufArchitecture(await readGgufInfo(modelFile));
    for (const file of lora) {
        // llama.cpp aborts the whole process on some bad adapter files: check before it sees them
        const info = await readGgufInfo(file);
        if (info.metadata["general.type"]?.value !== "adapter")
            throw new InputError(`--lora ${file}: not a LoRA adapter GGUF (general.type is not "adapter")`);
        if (ggufArchitecture(info) !== baseArch)
            throw new InputError(`--lora ${file}: adapter architecture ${ggufArchitecture(info)} does not match the model's ${baseArch}`);
    }
    return {
        modelFile, gpu, threads, pp, tg, reps, parallel: [...new Set(parallel)].sort((a, b) => a - b), lora, batchSize,
        flashAttention: options.flashAttention ?? false, seed: options.seed ?? inferBenchDefaults.seed
    };
}

/** What one timed test does: `run` returns the tokens it processed. */
interface Workload {
    run(rep: number): Promise<number>;
}

/**
 * llama-bench's method: one warm-up run, then `reps` timed runs; tokens/s of each. `between`
 * runs after each timed run, untimed (the reference's repetition of the same test).
 */
async function timeWorkload(work: Workload, reps: number, warmup: Workload, between?: () => Promise<void>): Promise<number[]> {
    await warmup.run(-1);
    const samples: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
        const started = performance.now();
        const tokens = await work.run(rep);
        const seconds = (performance.now() - started) / 1000;
        samples.push(tokens / seconds);
        await between?.();
    }
    return samples;
}

/**
 * Sampling as the synth stage runs it (its default temperature, top-p, top-k) with a stop
 * string checked at every token (ReAct's observation marker, which random ids do not spell),
 * and end-of-generation ignored so every request makes its full length.
 */
function synthSampling(seed: number): Omit<GenerationRequest, "prompt"> {
    const synth = defaultConfig.synth;
    // 32-bit, as the sampler takes it: the warm-up run's rep -1 gives seed 2^32 - 1, as before requests were checked
    return { temperature: synth.temperature, topP: synth.top_p, topK: synth.top_k, seed: seed >>> 0, stop: ["\nObservation:"], ignoreEos: true };
}

/**
 * The benchmark drives the generator the pipeline runs (`LoadedModel.createGenerator`, the
 * factory behind the synth stage's `ModelSession`): its queue, scheduler, sampling and stop
 * matching, on random token ids.
 */
class Runner {
    private readonly vocab: number;
    private readonly bos: number | undefined;
    /** Requests that ended before their length (a stop string spelled by chance). */
    short = 0;

    constructor(private readonly model: LoadedModel, private readonly o: Resolved, vocab: number) {
        this.vocab = vocab;
        this.bos = model.model.tokens.shouldPrependBosToken ? (model.bosToken ?? undefined) : undefined;
    }

    async generator(parallel: number, contextSize: number, batchSize: number, adapters: string[] = []): Promise<Generator> {
        return await this.model.createGenerator({
            parallel, contextSize, batchSize, adapters: adapters.map((filePath) => ({ filePath })), flashAttention: this.o.flashAttention
        });
    }

    /** Random ids, BOS first when the model wants one (as llama-bench). */
    tokens(count: number, seed: number): number[] {
        const tokens = Array.from(randomTokens(count, this.vocab, this.o.seed * 7919 + seed));
        if (this.bos != null && count > 0)
            tokens[0] = this.bos;
        return tokens;
    }

    /** pp: a `pp`-token prompt and one sampled token, in each generator in turn; counts the prompt tokens evaluated. */
    prompt(generators: Generator[], pp: number): Workload {
        return {
            run: async (rep) => {
                let evaluated = 0;
                for (const [k, generator] of generators.entries()) {
                    const before = generator.stats.promptTokens;
                    await generator.complete({ prompt: this.tokens(pp, 1000 + rep * 31 + k), maxTokens: 1, ...synthSampling(rep) });
                    evaluated += generator.stats.promptTokens - before;
                }
                return evaluated;
            }
        };
    }

    /**
     * tg: each generator gets as many requests as it has sequences, all at once: a one-token
     * prompt and `tg` sampled tokens each (tg decodes, as llama-bench). Generators of three
     * sub-agent contexts take turns step by step, as group planning does.
     */
    generate(generators: Generator[], tg: number): Workload {
        return {
            run: async (rep) => {
                const results = await Promise.all(generators.flatMap((generator, g) =>
                    Array.from({ length: generator.parallel }, (_, s) => generator.complete({
                        prompt: this.tokens(1, 2000 + rep * 997 + g * 101 + s),
                        maxTokens: tg,
                        ...synthSampling(rep * 1000 + g * 100 + s)
                    }))));
                this.short += results.filter((r) => r.generatedTokens < tg).length;
                return results.reduce((sum, r) => sum + r.generatedTokens, 0);
            }
        };
    }
}

function test(name: string, fields: Pick<BenchTest, "pp" | "tg" | "parallel" | "lora_adapters">, reps: number, samples: number[], vram: number | null): BenchTest {
    return {
        name, engine: "autoact", ...fields, reps, samples, mean: mean(samples), stddev: stddev(samples), unit: "tokens/s",
        peak_rss_bytes: process.resourceUsage().maxRSS * 1024, peak_vram_bytes: vram
    };
}

function nativeBackendOf(backend: string): NativeBackend {
    if (backend === "cuda" || backend === "vulkan" || backend === "metal")
        return backend;
    return "cpu";
}

/**
 * Inference benchmark of the pipeline's generator with llama-bench's method (warm-up,
 * repetitions, mean and standard deviation; pp and tg timed apart; token ids in, the synth
 * stage's sampling and a stop string on), the aggregate tokens/s of N requests generating
 * together, the cost of LoRA adapters, and optionally the same pp/tg
 * run by llama-bench (the native build: the same llama.cpp tag with the project's patches,
 * recorded in `llama_bench.patches`), with the ratios.
 */
export async function benchInfer(options: InferBenchOptions): Promise<BenchResult> {
    const load = watchLoad();
    const o = await resolveInferOptions(options);
    const progress = options.onProgress ?? (() => {});
    if (options.engine === "llama-bench")
        return await llamaBenchOnly(o, options, progress, load);
    if (options.engine != null && options.engine !== "autoact")
        throw new InputError(`unknown engine "${String(options.engine)}" (expected autoact or llama-bench)`);
    const timestamp = new Date().toISOString();
    const tests: BenchTest[] = [];
    const notes: string[] = [];

    const info = await readGgufInfo(o.modelFile);
    const vocab = ggufVocabSize(info);
    const engine: Engine = await createEngine({ gpu: o.gpu, threads: o.threads });
    // llama-bench's repetitions alternate with autoact's (pp and tg), so both see the same machine
    let binary: string | null = null;
    let reference: InterleavedLlamaBench | null = null;
    if (options.compareLlamaBench === true) {
        binary = await llamaBenchBinary(nativeBackendOf(engine.backend), options.llamaBench, progress);
        reference = new InterleavedLlamaBench({
            binary, model: o.modelFile, threads: o.threads, pp: o.pp, tg: o.tg, batchSize: o.batchSize,
            flashAttention: o.flashAttention, gpuLayers: engine.backend === "cpu" ? 0 : 999
        });
    }
    const gpuWatch = engine.backend === "cuda" ? watchGpuMemory(() => process.pid) : null;
    const vram = () => gpuWatch?.peak() ?? null;
    let build = "";
    let gpuFallback = null;
    let backendName = "";
    let gpuLayers: { offloaded: number; total: number } | null = null;
    try {
        build = `node-llama-cpp ${engine.llama.buildType}`;
        if (engine.backend !== "cpu") {
            const names = await engine.llama.getGpuDeviceNames().catch(() => []);
            const state = await engine.llama.getVramState().catch(() => null);
            if (names.length > 0)
                gpuFallback = { name: names[0]!, vram_bytes: state?.total ?? null, driver: null };
        }
        progress(`loading ${o.modelFile} (${engine.backend}, ${o.threads} threads)`);
        const model = await engine.loadModel(o.modelFile);
        // gpuLayers "auto" may offload part of the model where llama-bench gets -ngl 999: say how much
        gpuLayers = { offloaded: model.info.gpuLayers, total: model.info.totalLayers };
        if (engine.backend !== "cpu" && gpuLayers.offloaded < gpuLayers.total)
            notes.push(`autoact offloaded ${gpuLayers.offloaded} of ${gpuLayers.total} layers to the GPU (node-llama-cpp's "auto": what fits); llama-bench offloads all (-ngl 999).`);
        const runner = new Runner(model, o, vocab);
        const dispose = async (generators: Generator[]) => {
            for (const g of generators)
                await g.dispose();
        };

        load.measuring();
        const ppName = `pp${o.pp}`;
        const tgName = `tg${o.tg}`;
        const alongside = reference != null ? ", each followed by one of llama-bench's" : "";
        progress(`${ppName}: warm-up + ${o.reps} reps${alongside}`);
        let gens = [await runner.generator(1, o.pp + 1, o.batchSize)];
        backendName = gens[0]!.backendName;
        const pp = await timeWorkload(runner.prompt(gens, o.pp), o.reps, runner.prompt(gens, o.pp), reference ? () => reference.rep("pp") : undefined);
        tests.push(test(ppName, { pp: o.pp, tg: 0, parallel: 1, lora_adapters: 0 }, o.reps, pp, vram()));
        await dispose(gens);

        progress(`${tgName}: warm-up + ${o.reps} reps${alongside}`);
        gens = [await runner.generator(1, o.tg + 1, o.batchSize)];
        const tg = await timeWorkload(runner.generate(gens, o.tg), o.reps, runner.generate(gens, Math.min(o.tg, 16)), reference ? () => reference.rep("tg") : undefined);
        tests.push(test(tgName, { pp: 0, tg: o.tg, parallel: 1, lora_adapters: 0 }, o.reps, tg, vram()));
        await dispose(gens);

        for (const n of o.parallel) {
            if (n === 1) {
                // one sequence is the tg test itself
                tests.push(test(`${tgName}@1`, { pp: 0, tg: o.tg, parallel: 1, lora_adapters: 0 }, o.reps, tg, vram()));
                continue;
            }
            progress(`${tgName}@${n}: ${n} requests on ${n} sequences, warm-up + ${o.reps} reps`);
            // one step decodes all N sequences together, whatever --pp made the batch
            gens = [await runner.generator(n, o.tg + 1, Math.max(n, o.batchSize))];
            const agg = await timeWorkload(runner.generate(gens, o.tg), o.reps, runner.generate(gens, Math.min(o.tg, 16)));
            tests.push(test(`${tgName}@${n}`, { pp: 0, tg: o.tg, parallel: n, lora_adapters: 0 }, o.reps, agg, vram()));
            await dispose(gens);
        }

        if (o.lora.length > 0) {
            for (const count of [1, 3]) {
                const adapters = Array.from({ length: count }, (_, i) => o.lora[i % o.lora.length]!);
                progress(`LoRA: ${count} generator(s) with an adapter each: ${ppName} and ${tgName}`);
                gens = [];
                for (const adapter of adapters)
                    gens.push(await runner.generator(1, Math.max(o.pp, o.tg) + 1, o.batchSize, [adapter]));
                const lpp = await timeWorkload(runner.prompt(gens, o.pp), o.reps, runner.prompt(gens, o.pp));
                tests.push(test(`${ppName}+lora${count}`, { pp: o.pp, tg: 0, parallel: 1, lora_adapters: count }, o.reps, lpp, vram()));
                const ltg = await timeWorkload(runner.generate(gens, o.tg), o.reps, runner.generate(gens, Math.min(o.tg, 16)));
                tests.push(test(`${tgName}+lora${count}`, { pp: 0, tg: o.tg, parallel: 1, lora_adapters: count }, o.reps, ltg, vram()));
                await dispose(gens);
            }
            notes.push(`LoRA tests: +lora1 is one generator with ${path.basename(o.lora[0]!)}; +lora3 is three generators on one model, each with its own adapter (${o.lora.map((f) => path.basename(f)).join(", ")}), taking turns step by step; tokens/s counts all three.`);
        }
        notes.push("peak_rss_bytes of each test is the process's peak so far (maxRSS): it includes the model load and every earlier test, so it never falls from one test to the next.");
        if (runner.short > 0)
            notes.push(`${runner.short} request(s) ended before ${o.tg} tokens (a stop string spelled by chance); their tokens/s counts the tokens they made.`);
        await model.dispose();
    } finally {
        const peak = await gpuWatch?.stop();
        await engine.dispose();
        if (peak != null)
            for (const t of tests)
                t.peak_vram_bytes ??= peak;
    }

    const llamaBench: LlamaBenchRun | null = reference?.result() ?? null;
    const find = (list: BenchTest[] | undefined, name: string) => list?.find((t) => t.name === name && t.parallel === 1 && t.lora_adapters === 0);
    const ratio = (name: string) => {
        const ours = find(tests, name);
        const theirs = find(llamaBench?.tests, name);
        return ours != null && theirs != null && theirs.mean > 0 ? ours.mean / theirs.mean : null;
    };
    const { load_avg, notes: loadNotes } = load.finish();
    const fingerprint = await collectFingerprint({
        threads: o.threads, backend: engine.backend, build, modelFile: o.modelFile, gpuFallback, llamaCppCommit: llamaBench?.commit ?? null
    });
    return {
        schema: BENCH_RESULT_SCHEMA,
        kind: "infer",
        timestamp,
        command: options.command ?? process.argv.join(" "),
        load_avg,
        fingerprint,
        settings: {
            gpu: o.gpu, threads: o.threads, pp: o.pp, tg: o.tg, reps: o.reps, parallel: o.parallel, lora: o.lora,
            batch_size: o.batchSize, flash_attention: o.flashAttention, seed: o.seed, vocab,
            // node-llama-cpp decodes on libuv's thread pool; its size changes CPU generation speed (see bench/README.md)
            uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? null,
            // the generator's decode backend: "helper" (persistent threadpool, synchronous steps) or "node-llama-cpp"
            engine_helper: engine.helper != null,
            decode_backend: backendName,
            // layers node-llama-cpp put on the GPU, of the model's (0 on CPU)
            gpu_layers: gpuLayers,
            // what every request of the benchmark runs with, as the synth stage
            sampling: { ...synthSampling(0), seed: "per request" }
        },
        tests,
        llama_bench: llamaBench == null ? null : { binary: binary!, command: llamaBench.command, tests: llamaBench.tests, patches: nativeBuildPatches(binary!) },
        ratio_pp: llamaBench == null ? null : ratio(`pp${o.pp}`),
        ratio_tg: llamaBench == null ? null : ratio(`tg${o.tg}`),
        notes: [...notes, ...loadNotes]
    };
}

async function llamaBenchBinary(backend: NativeBackend, given: string | undefined, progress: (m: string) => void): Promise<string> {
    if (given != null)
        return given;
    const found = findNativeBuild(backend, ["llamaBench"])?.llamaBench;
    if (found != null)
        return found;
    progress(`building llama-bench (${backend}) from node-llama-cpp's llama.cpp source: autoact native build`);
    return (await ensureNativeBuild({ backend, onProgress: (p) => p.phase !== "build" && progress(p.message) })).llamaBench;
}

/** pp and tg by llama-bench alone (the native build: the same tag, patched), recorded as the result's tests. */
async function llamaBenchOnly(o: Resolved, options: InferBenchOptions, progress: (m: string) => void, load: ReturnType<typeof watchLoad>): Promise<BenchResult> {
    if (o.gpu === "auto")
        throw new InputError("--engine llama-bench needs an explicit --gpu (cpu, cuda, vulkan or metal): it runs the native build of that backend");
    const backend = nativeBackendOf(o.gpu);
    const timestamp = new Date().toISOString();
    const binary = await llamaBenchBinary(backend, options.llamaBench, progress);
    load.measuring();
    progress(`llama-bench only (${backend}): ${o.pp} prompt / ${o.tg} generated tokens, ${o.reps} reps`);
    const run = await runLlamaBench({
        binary, model: o.modelFile, threads: o.threads, pp: o.pp, tg: o.tg, reps: o.reps, batchSize: o.batchSize,
        flashAttention: o.flashAttention, gpuLayers: backend === "cpu" ? 0 : 999
    });
    const finished = load.finish();
    return {
        schema: BENCH_RESULT_SCHEMA,
        kind: "infer",
        timestamp,
        command: options.command ?? process.argv.join(" "),
        load_avg: finished.load_avg,
        fingerprint: await collectFingerprint({
            threads: o.threads, backend, build: "source Release (autoact native build)", modelFile: o.modelFile, llamaCppCommit: run.commit
        }),
        settings: {
            engine: "llama-bench", gpu: o.gpu, threads: o.threads, pp: o.pp, tg: o.tg, reps: o.reps, batch_size: o.batchSize,
            flash_attention: o.flashAttention, llama_bench_command: run.command, llama_bench_patches: nativeBuildPatches(binary)
        },
        tests: run.tests,
        llama_bench: null,
        ratio_pp: null,
        ratio_tg: null,
        notes: [`llama-bench only (--engine llama-bench, ${backend} build): autoact's own engine, parallel sequences and LoRA contexts were not measured in this run.`, ...finished.notes]
    };
}
