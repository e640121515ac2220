import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { readGgufInfo } from "../gguf/reader.js";
import { physicalCoreCount } from "../llm/cpu.js";
import { ensureNativeBuild, findNativeBuild, nativeBackends, type NativeBackend } from "../train/native-build.js";
import { writeTrainingSamples } from "../train/samples-file.js";
import { assertTrainOptions, targetModules, type TrainHyperParams } from "../train/options.js";
import { trainerArgs, type TrainDone, type TrainStart, type TrainStep } from "../train/trainer.js";
import { InputError, RuntimeFailure } from "../util/errors.js";
import { requireFile } from "../util/fs.js";
import { collectFingerprint, nvidiaGpu, watchGpuMemory } from "./fingerprint.js";
import { ggufVocabSize, resolveBenchModel } from "./models.js";
import { BENCH_RESULT_SCHEMA, type BenchResult } from "./result.js";
import { mean, randomTokens, stddev } from "./stats.js";

export interface TrainBenchOptions {
    /** A GGUF file, or `synth:PRESET[:TYPE]`. */
    model: string;
    /** Backend of the native trainer: auto = cuda when nvidia-smi finds a GPU, else cpu. Defaults to "auto". */
    gpu?: "auto" | NativeBackend;
    /** CPU threads. Defaults to the physical core count. */
    threads?: number;
    /** LoRA rank. Defaults to 8. */
    rank?: number;
    /** Tokens per sample (each step trains one sample of exactly this length). Defaults to 256. */
    ctx?: number;
    /** Target modules. Defaults to all seven projections. */
    targets?: string[];
    /** Optimizer steps; the first is the warm-up and is not counted. Defaults to 6. */
    steps?: number;
    /** The autoact-train executable. Defaults to the native build of the backend (built when missing). */
    trainer?: string;
    /** Seed of the token ids. Defaults to 42. */
    seed?: number;
    /** The command line recorded in the result. Defaults to process.argv. */
    command?: string;
    /** Progress lines (for stderr). Defaults to none. */
    onProgress?: (message: string) => void;
}

/**
 * Training benchmark: autoact-train on `steps` samples of `ctx` random tokens (a quarter
 * prompt, the rest response, as SFT samples look); tokens/s of each step after the first,
 * peak RAM (the trainer's own report) and peak VRAM (nvidia-smi, when there is a GPU).
 */
export async function benchTrain(options: TrainBenchOptions): Promise<BenchResult> {
    const gpuChoice = options.gpu ?? "auto";
    if (gpuChoice !== "auto" && !(nativeBackends as readonly string[]).includes(gpuChoice))
        throw new InputError(`unknown backend "${gpuChoice}" for --gpu (expected auto, ${nativeBackends.join(", ")})`);
    const positive = (value: number, what: string) => {
        if (!Number.isInteger(value) || value < 1)
            throw new InputError(`${what} must be a positive integer, got ${String(value)}`);
        return value;
    };
    const threads = positive(options.threads ?? physicalCoreCount(), "--threads");
    const steps = positive(options.steps ?? 6, "--steps");
    if (steps < 2)
        throw new InputError("--steps must be at least 2: the first step is the warm-up");
    const chosen = { rank: options.rank ?? 8, ctx: options.ctx ?? 256, targets: options.targets ?? [...targetModules], batch: 1 };
    assertTrainOptions(chosen as TrainHyperParams, (option) => `--${option.cli}`);
    const { rank, ctx, targets } = chosen;
    if (options.model == null || options.model === "")
        throw new InputError("--model is required: a GGUF file or synth:PRESET");
    const modelFile = await resolveBenchModel(options.model);
    const progress = options.onProgress ?? (() => {});
    const gpu = await nvidiaGpu();
    const backend: NativeBackend = gpuChoice === "auto" ? (gpu != null ? "cuda" : "cpu") : gpuChoice;

    let trainer = options.trainer;
    if (trainer == null) {
        trainer = findNativeBuild(backend)?.trainer;
        if (trainer == null) {
            progress(`building autoact-train (${backend}): autoact native build`);
            trainer = (await ensureNativeBuild({ backend, onProgress: (p) => p.phase !== "build" && progress(p.message) })).trainer;
        }
    }
    requireFile(trainer, "trainer executable");

    const timestamp = new Date().toISOString();
    const loadBefore = os.loadavg()[0]!;
    const vocab = ggufVocabSize(await readGgufInfo(modelFile));
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-bench-train-"));
    try {
        const samplesFile = path.join(work, "samples.bin");
        const ids = randomTokens(steps * ctx, Math.max(1, vocab - 3), options.seed ?? 42);
        const samples = Array.from({ length: steps }, (_, s) => {
            const tokens = Array.from(ids.subarray(s * ctx, (s + 1) * ctx), (t) => t + 3);
            return { tokens, mask: tokens.map((_, i) => (i >= ctx / 4 ? 1 : 0)) };
        });
        await writeTrainingSamples(samplesFile, samples);
        const args = trainerArgs({
            ...(chosen as TrainHyperParams), trainer, base: modelFile, samplesFile, out: path.join(work, "adapter.gguf"), steps,
            threads, gpuLayers: backend === "cpu" ? 0 : -1, seed: options.seed ?? 42
        });
        progress(`training ${steps} steps of ${ctx} tokens, rank ${rank}, ${backend}, ${threads} threads`);
        const child = execa(trainer, args, { reject: false, stdin: "ignore" });
        const watch = backend === "cuda" ? watchGpuMemory(() => child.pid) : null;
        const run = await child;
        const peakVram = (await watch?.stop()) ?? null;
        const events = String(run.stdout).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { event: string } & Record<string, unknown>);
        const error = events.find((e) => e.event === "error");
        const done = events.find((e) => e.event === "done") as unknown as TrainDone | undefined;
        const start = events.find((e) => e.event === "start") as unknown as TrainStart | undefined;
        if (run.exitCode !== 0 || done == null) {
            const message = (error?.message as string | undefined) ?? String(run.stderr).trim().split("\n").slice(-3).join(" | ");
            if (run.exitCode === 2)
                throw new InputError(`autoact-train: ${message}`);
            throw new RuntimeFailure(`autoact-train failed (exit ${run.exitCode}): ${message}`);
        }
        const stepLines = events.filter((e) => e.event === "step") as unknown as TrainStep[];
        // per-step rates from elapsed differences; step 1 (allocation, first graph) is the warm-up
        const rates = stepLines.slice(1).map((s, i) => s.tokens / Math.max(1e-9, s.elapsed_s - stepLines[i]!.elapsed_s));
        const params = (await readGgufInfo(modelFile)).tensors.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
        const notes: string[] = [];
        if (loadBefore > 0.25 * os.cpus().length)
            notes.push(`machine load average was ${loadBefore.toFixed(2)} at the start (${os.cpus().length} CPUs): other work shared the cores, so timings are pessimistic and noisy.`);
        const tokensPerS = mean(rates);
        notes.push(`FLOP count: about 4 x ${params} parameters = ${(4 * params / 1e6).toPrecision(3)} MFLOP per trained token (forward + input-gradient pass); measured ${(tokensPerS * 4 * params / 1e9).toPrecision(3)} GFLOP/s.`);
        return {
            schema: BENCH_RESULT_SCHEMA,
            kind: "train",
            timestamp,
            command: options.command ?? process.argv.join(" "),
            load_avg: { before: loadBefore, after: os.loadavg()[0]! },
            fingerprint: await collectFingerprint({ threads, backend, build: "source Release (autoact native build)", modelFile }),
            settings: {
                gpu: gpuChoice, threads, rank, ctx, targets, steps, trainer, lora_params: done.n_params,
                prompt_share: 0.25, flops_per_token: 4 * params, trainer_tokens_per_s: done.tokens_per_s,
                first_loss: done.first_loss, last_loss: done.loss, n_train: start?.n_train ?? null
            },
            tests: [{
                name: `train-r${rank}-ctx${ctx}`,
                engine: "autoact-train",
                pp: ctx,
                tg: 0,
                parallel: 1,
                lora_adapters: 1,
                reps: rates.length,
                samples: rates,
                mean: tokensPerS,
                stddev: stddev(rates),
                unit: "tokens/s",
                peak_rss_bytes: done.peak_rss_bytes,
                peak_vram_bytes: peakVram
            }],
            llama_bench: null,
            ratio_pp: null,
            ratio_tg: null,
            notes
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}
