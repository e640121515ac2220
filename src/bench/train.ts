import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { ggufDecoderShape, ggufParameterCount, readGgufInfo } from "../gguf/reader.js";
import { defaultThreadCount } from "../llm/cpu.js";
import { ensureNativeBuild, findNativeBuild, nativeBackends, nativeBuildPatches, type NativeBackend } from "../train/native-build.js";
import { writeTrainingSamples } from "../train/samples-file.js";
import { assertTrainOptions, resolveTrainOptions, targetModules, type ResolvedTrainHyperParams, type TrainHyperParams } from "../train/options.js";
import { trainerArgs, type TrainDone, type TrainStart, type TrainStep } from "../train/trainer.js";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { positiveInteger } from "../util/checks.js";
import { requireFile } from "../util/fs.js";
import { collectFingerprint, nvidiaGpu, watchGpuMemory, watchLoad } from "./fingerprint.js";
import { runLlamaBench, type LlamaBenchRun } from "./llama-bench.js";
import { ggufVocabSize, resolveBenchModel } from "./models.js";
import { BENCH_RESULT_SCHEMA, poolTests, type BenchResult, type BenchTest, type TorchReference } from "./result.js";
import { mean, median, randomTokens, stddev } from "./stats.js";
import { findTorchPython, runTorchReference, torchDtypes, type TorchDtype } from "./torch-reference.js";

/** Share of each benchmark sample that is prompt (no loss), as SFT samples look. */
const PROMPT_SHARE = 0.25;

/** The training benchmark's defaults, for the library and the CLI alike (the rest: the trainer's table). */
export const trainBenchDefaults = { rank: 8, ctx: 256, targets: targetModules, steps: 6, batch: 8, reps: 5, rounds: 1, seed: 42 } as const;

/** Unset sizes take {@link trainBenchDefaults}. */
export interface TrainBenchOptions {
    /** A GGUF file, or `synth:PRESET[:TYPE]`. */
    model: string;
    /** Backend of the native trainer: auto = cuda when nvidia-smi finds a GPU, else cpu. Defaults to "auto". */
    gpu?: "auto" | NativeBackend;
    /** CPU threads. Defaults to the physical core count. */
    threads?: number;
    /** LoRA rank. */
    rank?: number;
    /** Tokens per sample (every sample has exactly this length). */
    ctx?: number;
    /** Target modules (all seven projections by default). */
    targets?: string[];
    /** Optimizer steps; the first is the warm-up and is not counted. */
    steps?: number;
    /** Samples per step (packed into micro-batches of up to `batchTokens`). */
    batch?: number;
    /** Token budget of one packed micro-batch. Defaults to the trainer's table's. */
    batchTokens?: number;
    /** The trainer's --mixed-precision (src/train/options.ts): auto | on | off. Defaults to its table's. */
    mixedPrecision?: "auto" | "on" | "off";
    /** The trainer's --recompute: auto | on | off | a count of first layers ("12"). Defaults to its table's. */
    recompute?: TrainHyperParams["recompute"];
    /** llama-bench repetitions of pp<ctx>. */
    reps?: number;
    /**
     * Rounds of (autoact-train, llama-bench, PyTorch), one after the other: the machine's speed
     * drifts between phases, so each ratio is the median of the rounds' own.
     */
    rounds?: number;
    /** Also run the PyTorch LoRA reference (bench/reference/torch_lora.py) and record ratio_torch. Defaults to false. */
    compareTorch?: boolean;
    /** The reference's weights and autocast type. Defaults to bf16 on a GPU, f32 on a CPU. */
    torchDtype?: TorchDtype;
    /**
     * After the timed runs, one more run of the trainer with --profile (every node timed one at a
     * time, so not a speed): its top nodes go to the notes. Defaults to false.
     */
    profile?: boolean;
    /** Python executable with torch. Defaults to `python3`, then /usr/bin/python3. */
    python?: string;
    /** The autoact-train executable. Defaults to the native build of the backend (built when missing). */
    trainer?: string;
    /** More flags for autoact-train, for an A/B of its own choices (`--frozen-backward matmul`). Defaults to none. */
    trainerArgs?: string[];
    /** The llama-bench executable. Defaults to the native build of the backend. */
    llamaBench?: string;
    /** Seed of the token ids. */
    seed?: number;
    /** The command line recorded in the result. Defaults to process.argv. */
    command?: string;
    /** Progress lines (for stderr). Defaults to none. */
    onProgress?: (message: string) => void;
}

/**
 * Training benchmark: autoact-train on `steps` x `batch` samples of `ctx` random tokens (a
 * quarter prompt, the rest response); tokens/s of each step after the first, peak RAM (the
 * trainer's own report) and peak VRAM (nvidia-smi, when there is a GPU). In the same run,
 * llama-bench pp<ctx> of the same file, threads and backend (`ratio_train_to_pp`: training
 * against the forward pass alone), and with `compareTorch` a PyTorch LoRA of the same shape
 * (`ratio_torch`), skipped with a note where no Python imports torch.
 */
export async function benchTrain(options: TrainBenchOptions): Promise<BenchResult> {
    const load = watchLoad();
    const gpuChoice = options.gpu ?? "auto";
    if (gpuChoice !== "auto" && !(nativeBackends as readonly string[]).includes(gpuChoice))
        throw new InputError(`unknown backend "${gpuChoice}" for --gpu (expected auto, ${nativeBackends.join(", ")})`);
    const threads = positiveInteger(options.threads ?? defaultThreadCount(), "--threads");
    const steps = positiveInteger(options.steps ?? trainBenchDefaults.steps, "--steps");
    if (steps < 2)
        throw new InputError("--steps must be at least 2: the first step is the warm-up");
    const reps = positiveInteger(options.reps ?? trainBenchDefaults.reps, "--reps");
    const rounds = positiveInteger(options.rounds ?? trainBenchDefaults.rounds, "--rounds");
    if (options.torchDtype != null && !(torchDtypes as readonly string[]).includes(options.torchDtype))
        throw new InputError(`--torch-dtype must be one of ${torchDtypes.join(" | ")}, got "${String(options.torchDtype)}"`);
    const chosen: TrainHyperParams = {
        rank: options.rank ?? trainBenchDefaults.rank, ctx: options.ctx ?? trainBenchDefaults.ctx, targets: (options.targets ?? [...trainBenchDefaults.targets]) as TrainHyperParams["targets"],
        batch: options.batch ?? trainBenchDefaults.batch, batchTokens: options.batchTokens, mixedPrecision: options.mixedPrecision,
        recompute: options.recompute, steps,
        // no checkpoint write inside the timed steps (the PyTorch reference writes none)
        checkpointEvery: 0
    };
    assertTrainOptions(chosen, (option) => `--${option.cli}`);
    const hyper = resolveTrainOptions(chosen);
    if (options.model == null || options.model === "")
        throw new InputError("--model is required: a GGUF file or synth:PRESET");
    const modelFile = await resolveBenchModel(options.model);
    const progress = options.onProgress ?? (() => {});
    const gpu = await nvidiaGpu();
    const backend: NativeBackend = gpuChoice === "auto" ? (gpu != null ? "cuda" : "cpu") : gpuChoice;
    const { trainer, llamaBench } = await nativeTools(backend, options, progress);
    const trainerArgs = options.trainerArgs ?? [];

    const timestamp = new Date().toISOString();
    load.measuring();
    const info = await readGgufInfo(modelFile);
    const params = ggufParameterCount(info);
    const seed = options.seed ?? trainBenchDefaults.seed;

    const notes: string[] = [];
    const played: { trained: TrainerBench; forward: LlamaBenchRun; pp: BenchTest; torch: TorchReference | null }[] = [];
    let torchAvailable = options.compareTorch === true;
    for (let round = 1; round <= rounds; round++) {
        if (rounds > 1)
            progress(`round ${round} of ${rounds}`);
        const trained = await runTrainerBench({ trainer, modelFile, vocab: ggufVocabSize(info), hyper, threads, backend, seed, progress, extraArgs: trainerArgs });
        progress(`llama-bench pp${hyper.ctx}: the forward pass of the same file, ${threads} threads, ${reps} reps`);
        const forward = await runLlamaBench({
            binary: llamaBench, model: modelFile, threads, pp: hyper.ctx, tg: 0, reps, batchSize: hyper.ctx,
            flashAttention: false, gpuLayers: backend === "cpu" ? 0 : 999
        });
        const pp = forward.tests.find((t) => t.pp === hyper.ctx && t.tg === 0);
        if (pp == null)
            throw new RuntimeFailure(`llama-bench reported no pp${hyper.ctx} test`);
        const torch = torchAvailable ? await runTorchBench({ python: options.python, info, hyper, threads, backend, seed, dtype: options.torchDtype, progress, notes }) : null;
        torchAvailable &&= torch != null;
        played.push({ trained, forward, pp, torch });
    }
    const { trained, forward } = played[0]!;
    trained.test = poolTests(played.map((r) => r.trained.test));
    const pp = poolTests(played.map((r) => r.pp));
    forward.tests = forward.tests.map((t) => (t === played[0]!.pp ? pp : t));
    // a reference that failed in a later round leaves no comparison (its note says why), not a lost run
    const torch = played.some((r) => r.torch == null) ? null : { ...played[0]!.torch!, tests: [poolTests(played.map((r) => r.torch!.tests[0]!))] };
    const ratioTrainToPp = median(played.map((r) => r.trained.test.mean / r.pp.mean));
    const ratioTorch = torch == null ? null : median(played.map((r) => r.trained.test.mean / r.torch!.tests[0]!.mean));
    if (rounds > 1)
        notes.push(`${rounds} rounds of (autoact-train, llama-bench${torch != null ? ", PyTorch" : ""}): the tests pool the rounds' samples; each ratio is the median of the rounds' ratios (ratio_train_to_pp ${played.map((r) => (r.trained.test.mean / r.pp.mean).toFixed(3)).join(", ")}${torch != null ? `; ratio_torch ${played.map((r) => (r.trained.test.mean / r.torch!.tests[0]!.mean).toFixed(3)).join(", ")}` : ""}).`);

    const buffers = Object.entries(trained.done.compute_buffer_bytes ?? {});
    if (buffers.length > 0)
        notes.push(`the trainer's compute buffers (activations and temporaries of its largest graph): ${buffers.map(([name, bytes]) => `${name} ${(bytes / 2 ** 20).toFixed(1)} MiB`).join(", ")}.`);
    if ((trained.done.repacked_weights ?? 0) > 0)
        notes.push(`the trainer's forward pass read ${trained.done.repacked_weights} frozen weights repacked for this CPU's own kernels (AMX tiles or interleaved blocks, as llama-bench's), their transposed copies made from the file.`);
    const fileBytes = trained.done.weight_file_bytes ?? 0;
    if (fileBytes > 0)
        notes.push(`peak RSS counts the ${(fileBytes / 2 ** 30).toFixed(2)} GiB of the base file that the copies made in each pass read twice: mapped by llama.cpp (which read them to repack) and by the trainer, the same pages of memory.`);
    // the trainer's own choices for the memory it had (copies in each pass, recomputed activations)
    notes.push(...new Set(played.flatMap((r) => r.trained.notices).map((message) => `autoact-train: ${message}`)));
    if (options.profile === true) {
        progress("autoact-train --profile: one more run, every node timed one at a time");
        const profiled = await runTrainerBench({ trainer, modelFile, vocab: ggufVocabSize(info), hyper, threads, backend, seed, progress, extraArgs: [...trainerArgs, "--profile"] });
        if (profiled.profile != null)
            notes.push(`profile (autoact-train --profile, node by node, ${profiled.profile.passes} passes, ${profiled.profile.ms_per_pass.toFixed(1)} ms per pass): ` +
                profiled.profile.top.slice(0, 15).map((n) => `${(100 * n.share).toFixed(1)}% ${n.node}`).join("; "));
    }
    if (torch?.tests[0]?.peak_vram_bytes != null)
        notes.push("peak VRAM is not comparable across engines: autoact-train's is nvidia-smi's per-process figure (CUDA context and pools included), PyTorch's torch.cuda.max_memory_allocated (its tensors only).");
    const tokensPerS = trained.test.mean;
    const finished = load.finish();
    notes.push(...finished.notes);
    notes.push(`FLOP count: about 4 x ${params} parameters = ${(4 * params / 1e6).toPrecision(3)} MFLOP per trained token (forward + input-gradient pass); measured ${(tokensPerS * 4 * params / 1e9).toPrecision(3)} GFLOP/s.`);
    notes.push(`autoact-train runs at ${ratioTrainToPp.toFixed(2)}x llama-bench pp${hyper.ctx} (${pp.mean.toFixed(0)} tokens/s, the forward pass alone) on the same file${torch != null ? ` and ${ratioTorch!.toFixed(2)}x the PyTorch reference (${torch.tests[0]!.mean.toFixed(0)} tokens/s, ${torch.lora}, ${torch.dtype})` : ""}.`);
    return {
        schema: BENCH_RESULT_SCHEMA,
        kind: "train",
        timestamp,
        command: options.command ?? process.argv.join(" "),
        load_avg: finished.load_avg,
        fingerprint: await collectFingerprint({ threads, backend, build: "source Release (autoact native build)", modelFile, llamaCppCommit: forward.commit }),
        settings: {
            gpu: gpuChoice, threads, rank: hyper.rank, alpha: hyper.alpha, lora_dropout: hyper.loraDropout, ctx: hyper.ctx, targets: hyper.targets,
            steps, rounds, batch: hyper.batch, batch_tokens: hyper.batchTokens, micro_batch_tokens: trained.start?.batch_tokens ?? null, attention_block: trained.start?.attention_block ?? null, mixed_precision: hyper.mixedPrecision, input_grad_type: trained.start?.input_grad_type ?? null, forward_bf16: trained.start?.forward_bf16 ?? null, recompute: trained.done.recompute ?? trained.start?.recompute ?? null, recomputed_layers: trained.done.recomputed_layers ?? null, frozen_backward: trained.done.frozen_backward ?? trained.start?.frozen_backward ?? null, trainer, trainer_args: trainerArgs, llama_bench: llamaBench,
            lora_params: trained.done.n_params, prompt_share: PROMPT_SHARE, flops_per_token: 4 * params,
            trainer_tokens_per_s: trained.done.tokens_per_s, first_loss: trained.done.first_loss, last_loss: trained.done.loss,
            n_train: trained.start?.n_train ?? null, compare_torch: options.compareTorch === true
        },
        tests: [trained.test],
        llama_bench: { binary: llamaBench, command: forward.command, tests: forward.tests, patches: nativeBuildPatches(llamaBench) },
        ratio_pp: null,
        ratio_tg: null,
        torch,
        ratio_train_to_pp: Number.isFinite(ratioTrainToPp) ? ratioTrainToPp : null,
        ratio_torch: ratioTorch != null && Number.isFinite(ratioTorch) ? ratioTorch : null,
        notes
    };
}

/** autoact-train and llama-bench: the given executables, else the native build of the backend (built when missing). */
async function nativeTools(backend: NativeBackend, options: TrainBenchOptions, progress: (m: string) => void): Promise<{ trainer: string; llamaBench: string }> {
    let build = options.trainer != null && options.llamaBench != null ? null : findNativeBuild(backend, ["trainer", "llamaBench"]);
    if (build == null && (options.trainer == null || options.llamaBench == null)) {
        progress(`building autoact-train and llama-bench (${backend}): autoact native build`);
        build = await ensureNativeBuild({ backend, onProgress: (p) => p.phase !== "build" && progress(p.message) });
    }
    const trainer = options.trainer ?? build!.trainer;
    const llamaBench = options.llamaBench ?? build!.llamaBench;
    requireFile(trainer, "trainer executable");
    requireFile(llamaBench, "llama-bench executable");
    return { trainer, llamaBench };
}

interface TrainerBench {
    test: BenchTest;
    done: TrainDone;
    start: TrainStart | undefined;
    /** The trainer's --profile line, when it was asked for. */
    profile: TrainProfile | undefined;
    /** What the trainer chose for the memory it had (its `notice` lines). */
    notices: string[];
}

/** autoact-train --profile's JSON line (native/README.md). */
interface TrainProfile {
    passes: number;
    ms_per_pass: number;
    top: { node: string; count: number; ms_per_pass: number; share: number }[];
}

async function runTrainerBench(o: {
    trainer: string; modelFile: string; vocab: number; hyper: ResolvedTrainHyperParams; threads: number; backend: NativeBackend;
    seed: number; progress: (m: string) => void; extraArgs?: string[];
}): Promise<TrainerBench> {
    const { ctx, batch, steps } = o.hyper;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-bench-train-"));
    try {
        const samplesFile = path.join(work, "samples.bin");
        const count = steps * batch;
        const ids = randomTokens(count * ctx, Math.max(1, o.vocab - 3), o.seed);
        const samples = Array.from({ length: count }, (_, s) => {
            const tokens = Array.from(ids.subarray(s * ctx, (s + 1) * ctx), (t) => t + 3);
            return { tokens, mask: tokens.map((_, i) => (i >= ctx * PROMPT_SHARE ? 1 : 0)) };
        });
        await writeTrainingSamples(samplesFile, samples);
        const args = trainerArgs({
            ...o.hyper, trainer: o.trainer, base: o.modelFile, samplesFile, out: path.join(work, "adapter.gguf"),
            threads: o.threads, gpuLayers: o.backend === "cpu" ? 0 : -1, seed: o.seed
        });
        o.progress(`training ${steps} steps of ${batch} x ${ctx} tokens, rank ${o.hyper.rank}, ${o.backend}, ${o.threads} threads`);
        const child = execa(o.trainer, [...args, ...(o.extraArgs ?? [])], { reject: false, stdin: "ignore" });
        const watch = o.backend === "cuda" ? watchGpuMemory(() => child.pid) : null;
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
        return {
            done,
            start,
            profile: events.find((e) => e.event === "profile") as unknown as TrainProfile | undefined,
            notices: events.filter((e) => e.event === "notice").map((e) => String(e.message)),
            test: {
                name: `train-r${o.hyper.rank}-ctx${ctx}`, engine: "autoact-train", pp: ctx, tg: 0, parallel: 1, lora_adapters: 1,
                reps: rates.length, samples: rates, mean: mean(rates), stddev: stddev(rates), unit: "tokens/s",
                peak_rss_bytes: done.peak_rss_bytes, peak_vram_bytes: peakVram
            }
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/**
 * The PyTorch reference of the same shape and settings, or null with a note: where no Python
 * imports torch, or when the reference fails (the trainer's figures are kept either way).
 */
async function runTorchBench(o: {
    python: string | undefined; info: Awaited<ReturnType<typeof readGgufInfo>>; hyper: ResolvedTrainHyperParams; threads: number;
    backend: NativeBackend; seed: number; dtype: TorchDtype | undefined; progress: (m: string) => void; notes: string[];
}): Promise<TorchReference | null> {
    // each round runs the reference: a note that every round would repeat is written once
    const note = (message: string) => {
        if (!o.notes.includes(message))
            o.notes.push(message);
    };
    const skip = (message: string) => {
        o.progress(message);
        note(message);
        return null;
    };
    if (o.backend !== "cpu" && o.backend !== "cuda")
        return skip(`PyTorch reference skipped: it runs on cpu or cuda, not ${o.backend}`);
    const device = o.backend;
    const found = await findTorchPython(device, o.python);
    if ("skipped" in found)
        return skip(found.skipped);
    const dtype = o.dtype ?? (device === "cuda" ? "bf16" : "f32");
    o.progress(`PyTorch ${found.version} reference (${found.python}, ${device}, ${dtype}): ${o.hyper.steps} steps of ${o.hyper.batch} x ${o.hyper.ctx} tokens`);
    let run;
    try {
        run = await runTorchReference({
            python: found.python, shape: ggufDecoderShape(o.info), rank: o.hyper.rank, alpha: o.hyper.alpha, dropout: o.hyper.loraDropout,
            targets: o.hyper.targets, ctx: o.hyper.ctx, batch: o.hyper.batch, steps: o.hyper.steps, threads: o.threads, device, dtype,
            lr: o.hyper.lr, seed: o.seed
        });
    } catch (error) {
        return skip(`PyTorch reference failed, no ratio_torch: ${errorMessage(error)}`);
    }
    note(`PyTorch reference: ${run.report.lora} LoRA, torch ${run.report.torch} with ${run.report.threads} threads, loss ${run.report.first_loss.toFixed(3)} -> ${run.report.last_loss.toFixed(3)}.`);
    return {
        command: run.command, version: run.report.torch, lora: run.report.lora, device: run.report.device, dtype: run.report.dtype,
        lora_params: run.report.lora_params, tests: [run.test]
    };
}
