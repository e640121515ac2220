import path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { benchInfer, benchTrain, checkResultOut, defaultResultsDir, gpuChoices, inferBenchDefaults, renderBenchReport, torchDtypes, trainBenchDefaults, writeBenchResult, type BenchResult, type TorchDtype } from "../../bench/index.js";
import { InputError } from "../../util/errors.js";
import { writeFileAtomicSync } from "../../util/fs.js";
import { benchRemote, remoteBenchDefaults } from "../../bench/remote.js";
import { quoteArg } from "../../bench/llama-bench.js";
import type { GpuChoice } from "../../llm/engine.js";
import { checkAdapterFitsBase, checkGgufFileSync } from "../../llm/gguf-check.js";
import { nativeBackends, type NativeBackend } from "../../train/native-build.js";
import { trainCliOptions, type TrainHyperParams } from "../../train/options.js";
import { sharedOptions } from "../shared-options.js";
import { commandGroup } from "../command-group.js";

const progress = (message: string) => process.stderr.write(`bench: ${message}\n`);
const commandLine = () => ["autoact", ...process.argv.slice(2)].map(quoteArg).join(" ");

/** "1,2,4" (or repeated flags) -> numbers; anything else is an InputError naming the flag. */
function numberList(value: unknown, flag: string): number[] | undefined {
    if (value == null)
        return undefined;
    const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(",")).map((s) => s.trim()).filter((s) => s !== "");
    return parts.map((part) => {
        const n = Number(part);
        if (!/^-?\d+$/.test(part) || !Number.isSafeInteger(n))
            throw new InputError(`--${flag} ${part}: expected integers separated by commas, e.g. 1,2,4,8`);
        return n;
    });
}

/** A one-value flag's value (the CLI refuses one given twice before any command runs: cli.ts). */
function single<T>(value: T | T[] | undefined, _flag: string): T | undefined {
    return value as T | undefined;
}

async function save(result: BenchResult, out: string | undefined, dir: string | undefined): Promise<void> {
    const files = await writeBenchResult(result, { out, dir });
    const lines: string[] = [];
    for (const t of [...result.tests, ...(result.llama_bench?.tests ?? [])])
        lines.push(`${t.engine.padEnd(13)} ${t.name.padEnd(18)} ${t.mean.toFixed(2).padStart(11)} ± ${t.stddev.toFixed(2)} tokens/s`);
    for (const t of result.torch?.tests ?? [])
        lines.push(`${t.engine.padEnd(13)} ${t.name.padEnd(18)} ${t.mean.toFixed(2).padStart(11)} ± ${t.stddev.toFixed(2)} tokens/s`);
    if (result.ratio_pp != null || result.ratio_tg != null)
        lines.push(`ratio autoact / llama-bench: pp ${result.ratio_pp?.toFixed(3) ?? "-"}, tg ${result.ratio_tg?.toFixed(3) ?? "-"}`);
    if (result.ratio_train_to_pp != null)
        lines.push(`ratio_train_to_pp ${result.ratio_train_to_pp.toFixed(3)} (training / llama-bench forward pass)`);
    if (result.ratio_torch != null)
        lines.push(`ratio_torch ${result.ratio_torch.toFixed(3)} (autoact-train / PyTorch)`);
    for (const note of result.notes)
        lines.push(`note: ${note}`);
    lines.push(`wrote ${files.json}`, `wrote ${files.arrow}`);
    process.stdout.write(`${lines.join("\n")}\n`);
}

interface RemoteArgs {
    model: string;
    parallel?: number;
    tg?: number;
    reps?: number;
    threads?: number;
    "llama-server"?: string;
    out?: string;
}

const remote: CommandModule<object, RemoteArgs> = {
    command: "remote",
    describe: "The remote backend's aggregate tokens/s against llama-server's own /completion at the same concurrency",
    builder: (yargs) => yargs
        .option("model", { ...sharedOptions.benchModel, describe: "GGUF file of a trained model (random synth: weights write bytes that are not UTF-8, which llama-server refuses)" })
        .option("parallel", { type: "number", default: remoteBenchDefaults.parallel, describe: "Concurrent requests and server slots" })
        .option("tg", { type: "number", default: remoteBenchDefaults.tg, describe: "Generated tokens per request" })
        .option("reps", { type: "number", default: remoteBenchDefaults.reps, describe: "Timed rounds per client" })
        .option("threads", { type: "number", default: remoteBenchDefaults.threads, describe: "llama-server threads" })
        .option("llama-server", sharedOptions.llamaServer)
        .option("out", { type: "string", describe: "Result JSON file (default: printed only)" }) as unknown as Argv<RemoteArgs>,
    handler: async (args) => {
        checkBenchInputs(single(args.model, "model")!, []);
        const result = await benchRemote({
            model: single(args.model, "model")!, parallel: single(args.parallel, "parallel"), tg: single(args.tg, "tg"), reps: single(args.reps, "reps"),
            threads: single(args.threads, "threads"), llamaServer: single(args["llama-server"], "llama-server"), command: commandLine(), onProgress: progress
        });
        const json = `${JSON.stringify(result, null, 2)}\n`;
        const out = single(args.out, "out");
        if (out != null)
            writeFileAtomicSync(out, json);
        process.stdout.write(json);
    }
};

interface InferArgs {
    model: string;
    gpu: string;
    threads?: number;
    pp?: number;
    tg?: number;
    reps?: number;
    parallel?: string | string[];
    lora?: string[];
    out?: string;
    "results-dir"?: string;
    "compare-llama-bench": boolean;
    "llama-bench"?: string;
    "flash-attn": boolean;
    engine: string;
}

const infer: CommandModule<object, InferArgs> = {
    command: "infer",
    describe: "Prompt (pp) and generation (tg) tokens/s, N parallel sequences and LoRA contexts, as llama-bench measures them",
    builder: (yargs) => yargs
        .option("model", sharedOptions.benchModel)
        .option("gpu", { type: "string", default: "auto", describe: gpuChoices.join(" | ") })
        .option("threads", sharedOptions.threads)
        .option("pp", { type: "number", default: inferBenchDefaults.pp, describe: "Prompt tokens of the pp test" })
        .option("tg", { type: "number", default: inferBenchDefaults.tg, describe: "Generated tokens of the tg test" })
        .option("reps", { type: "number", default: inferBenchDefaults.reps, describe: "Timed repetitions after a warm-up" })
        .option("parallel", { type: "string", describe: `Sequence counts for aggregate generation (default ${inferBenchDefaults.parallel.join(",")}), e.g. 1,2,4,8,16,32` })
        .option("lora", { type: "string", array: true, describe: "LoRA adapter files (or zero:RANK): tests with 1 and 3 adapter contexts" })
        .option("compare-llama-bench", { type: "boolean", default: false, describe: "Also run llama.cpp's llama-bench (native build) and record ratio_pp / ratio_tg" })
        .option("llama-bench", sharedOptions.llamaBench)
        .option("flash-attn", { type: "boolean", default: false, describe: "Flash attention in the benchmark contexts (and llama-bench)" })
        .option("engine", { type: "string", default: "autoact", describe: "autoact | llama-bench (only llama-bench, where node-llama-cpp has no binary for the backend)" })
        .option("out", { type: "string", describe: "Result JSON file (default: bench/results/<date>-<machine>-<model>-infer.json)" })
        .option("results-dir", sharedOptions.resultsDir) as unknown as Argv<InferArgs>,
    handler: async (args) => {
        checkBenchInputs(single(args.model, "model")!, args.lora ?? [], single(args.out, "out"));
        const result = await benchInfer({
            model: single(args.model, "model")!,
            gpu: single(args.gpu, "gpu") as GpuChoice,
            threads: single(args.threads, "threads"),
            pp: single(args.pp, "pp"),
            tg: single(args.tg, "tg"),
            reps: single(args.reps, "reps"),
            parallel: numberList(args.parallel, "parallel"),
            lora: args.lora,
            compareLlamaBench: args["compare-llama-bench"],
            llamaBench: single(args["llama-bench"], "llama-bench"),
            flashAttention: args["flash-attn"],
            engine: single(args.engine, "engine") as "autoact" | "llama-bench",
            command: commandLine(),
            onProgress: progress
        });
        await save(result, single(args.out, "out"), single(args["results-dir"], "results-dir"));
    }
};

interface TrainArgs {
    model: string;
    gpu: string;
    threads?: number;
    rank?: number;
    ctx?: number;
    targets?: string;
    steps?: number;
    batch?: number;
    "batch-tokens"?: number;
    "mixed-precision"?: string;
    recompute?: string;
    reps?: number;
    rounds?: number;
    "compare-torch": boolean;
    "torch-dtype"?: string;
    profile: boolean;
    python?: string;
    trainer?: string;
    "trainer-args"?: string;
    "llama-bench"?: string;
    out?: string;
    "results-dir"?: string;
}

const train: CommandModule<object, TrainArgs> = {
    command: "train",
    describe: "LoRA training tokens/s and peak memory of the native trainer, against llama-bench pp<ctx> of the same file (and a PyTorch LoRA with --compare-torch)",
    builder: (yargs) => yargs
        .option("model", sharedOptions.benchModel)
        .option("gpu", { type: "string", default: "auto", describe: `${["auto", ...nativeBackends].join(" | ")} (the native build's backend)` })
        .option("threads", sharedOptions.threads)
        .option("rank", { type: "number", default: trainBenchDefaults.rank, describe: "LoRA rank" })
        .option("ctx", { type: "number", default: trainBenchDefaults.ctx, describe: "Tokens per training sample" })
        .option("targets", { type: "string", describe: `Comma-separated modules (default: ${trainBenchDefaults.targets.join(",")})` })
        .option("steps", { type: "number", default: trainBenchDefaults.steps, describe: "Optimizer steps (the first is the warm-up)" })
        .option("batch", { type: "number", default: trainBenchDefaults.batch, describe: "Samples of --ctx tokens per step, packed into micro-batches of up to --batch-tokens" })
        // the trainer's own options, as `autoact train` declares them
        .option("batch-tokens", trainCliOptions()["batch-tokens"]!)
        .option("mixed-precision", trainCliOptions()["mixed-precision"]!)
        .option("recompute", trainCliOptions().recompute!)
        .option("reps", { type: "number", default: trainBenchDefaults.reps, describe: "Repetitions of llama-bench pp<ctx>, run on the same model, threads and backend" })
        .option("rounds", { type: "number", default: trainBenchDefaults.rounds, describe: "Rounds of (trainer, llama-bench, PyTorch); each ratio is the median of the rounds' (the machine's speed drifts between phases)" })
        .option("compare-torch", { type: "boolean", default: false, describe: "Also train a PyTorch LoRA of the same shape (bench/reference/torch_lora.py; skipped where torch is absent) and record ratio_torch" })
        .option("torch-dtype", { type: "string", describe: `The PyTorch reference's weights and autocast type: ${torchDtypes.join(" | ")} (default bf16 on a GPU, f32 on a CPU)` })
        .option("profile", { type: "boolean", default: false, describe: "After the timed runs, one more with autoact-train --profile (node by node): where a training pass spends its time, in the result's notes" })
        .option("python", { type: "string", describe: "Python with torch for --compare-torch (default: python3, then /usr/bin/python3)" })
        .option("trainer", { type: "string", describe: "autoact-train executable (default: the native build's)" })
        .option("trainer-args", { type: "string", describe: "More flags for autoact-train, space-separated, recorded in the result: an A/B of its own choices (--trainer-args=\"--frozen-backward matmul\", with the =)" })
        .option("llama-bench", sharedOptions.llamaBench)
        .option("out", { type: "string", describe: "Result JSON file (default: bench/results/<date>-<machine>-<model>-train.json)" })
        .option("results-dir", sharedOptions.resultsDir) as unknown as Argv<TrainArgs>,
    handler: async (args) => {
        const targets = single(args.targets, "targets");
        checkBenchInputs(single(args.model, "model")!, [], single(args.out, "out"));
        const result = await benchTrain({
            model: single(args.model, "model")!,
            gpu: single(args.gpu, "gpu") as "auto" | NativeBackend,
            threads: single(args.threads, "threads"),
            rank: single(args.rank, "rank"),
            ctx: single(args.ctx, "ctx"),
            targets: targets?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
            steps: single(args.steps, "steps"),
            batch: single(args.batch, "batch"),
            batchTokens: single(args["batch-tokens"], "batch-tokens"),
            mixedPrecision: single(args["mixed-precision"], "mixed-precision") as "auto" | "on" | "off" | undefined,
            recompute: single(args.recompute, "recompute") as TrainHyperParams["recompute"],
            reps: single(args.reps, "reps"),
            rounds: single(args.rounds, "rounds"),
            compareTorch: args["compare-torch"],
            torchDtype: single(args["torch-dtype"], "torch-dtype") as TorchDtype | undefined,
            profile: args.profile,
            python: single(args.python, "python"),
            trainer: single(args.trainer, "trainer"),
            trainerArgs: single(args["trainer-args"], "trainer-args")?.split(/\s+/).filter((a) => a !== ""),
            llamaBench: single(args["llama-bench"], "llama-bench"),
            command: commandLine(),
            onProgress: progress
        });
        await save(result, single(args.out, "out"), single(args["results-dir"], "results-dir"));
    }
};

/** The one GGUF check, before any llama.cpp load: a bad file is one line, not a native abort; and --out before the run, not after it. */
function checkBenchInputs(model: string, loras: readonly string[], out?: string): void {
    if (out != null)
        checkResultOut(out);
    if (model.startsWith("synth:"))
        return;
    checkGgufFileSync(model, "model");
    // zero:RANK is written for the model by resolveLoraSpecs, which checks its rank
    for (const lora of loras.filter((spec) => !spec.startsWith("zero:")))
        checkAdapterFitsBase(lora, model);
}

interface ReportArgs {
    in: string;
    out: string;
}

const report: CommandModule<object, ReportArgs> = {
    command: "report",
    describe: "Render bench/REPORT.md (tables and SVG charts) from the result files",
    builder: (yargs) => yargs
        // the package's own folders, shown as they are wherever the command runs from
        .option("in", { type: "string", default: defaultResultsDir, describe: "Folder of result JSON files" })
        .option("out", { type: "string", default: path.join(path.dirname(defaultResultsDir), "REPORT.md"), describe: "Markdown file (charts go in a report/ folder beside it)" }) as unknown as Argv<ReportArgs>,
    handler: async (args) => {
        const rendered = await renderBenchReport({ inDir: single(args.in, "in")!, out: single(args.out, "out")! });
        for (const problem of rendered.skipped)
            process.stderr.write(`bench: skipped ${problem}\n`);
        process.stdout.write(`wrote ${rendered.markdown} (${rendered.results} results) and ${rendered.charts.length} charts\n`);
    }
};

export const benchCommand = commandGroup("bench", "Benchmarks: inference and training tokens/s with a hardware fingerprint, and their report",
    [infer, train, report, remote]);
