import path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { runAndSummarize } from "../pipeline-options.js";
import { InputError } from "../../util/errors.js";
import { createTrainProgress, nativeBackends, trainAgents, type NativeBackend } from "../../train/index.js";

interface TrainArgs {
    "run-dir"?: string;
    config?: string;
    base?: string;
    data?: string;
    agent?: string;
    out?: string;
    steps?: number;
    epochs?: number;
    rank?: number;
    alpha?: number;
    lr?: number;
    ctx?: number;
    targets?: string;
    schedule?: string;
    warmup?: number;
    "grad-accum"?: number;
    batch?: number;
    "eval-fraction"?: number;
    "eval-every"?: number;
    "checkpoint-every"?: number;
    seed?: number;
    resume: boolean;
    threads?: number;
    backend: string;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
    command: "train",
    describe: "Train LoRA adapters (plan, tool, reflect) with the native trainer: a pipeline's (--run-dir) or on their own (--base --data --agent --out)",
    builder: (yargs) => yargs
        .option("run-dir", { type: "string", describe: "Run the pipeline's train stage on this run directory (its config.yaml and samples.arrow)" })
        .option("config", { type: "string", describe: "With --run-dir: pipeline YAML instead of <run-dir>/config.yaml" })
        .option("base", { type: "string", describe: "Base model GGUF" })
        .option("data", { type: "string", describe: "samples.arrow, or JSON/JSONL rows of {input, output, agent?}" })
        .option("agent", { type: "string", describe: "plan | tool | reflect | all (each agent in the data)" })
        .option("out", { type: "string", describe: "Output folder: <agent>.gguf and train-<agent>.arrow" })
        .option("steps", { type: "number", describe: "Optimizer steps (default: as many as --epochs take)" })
        .option("epochs", { type: "number", describe: "Epochs (default 1)" })
        .option("rank", { type: "number", describe: "LoRA rank (default 8)" })
        .option("alpha", { type: "number", describe: "LoRA alpha (default 16)" })
        .option("lr", { type: "number", describe: "Peak learning rate (default 2e-4)" })
        .option("ctx", { type: "number", describe: "Context length; longer samples are an error (default 512)" })
        .option("targets", { type: "string", describe: "Comma-separated modules: attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down (default all)" })
        .option("schedule", { type: "string", describe: "constant | linear | cosine (default cosine)" })
        .option("warmup", { type: "number", describe: "Warm-up steps (default 0)" })
        .option("batch", { type: "number", describe: "Samples per micro-batch (default 1)" })
        .option("grad-accum", { type: "number", describe: "Micro-batches per optimizer step (default 1)" })
        .option("eval-fraction", { type: "number", describe: "Share of samples held out for the eval loss (default 0)" })
        .option("eval-every", { type: "number", describe: "Steps between eval losses (default: at the end)" })
        .option("checkpoint-every", { type: "number", describe: "Steps between checkpoints (default: on Ctrl-C and at the end)" })
        .option("seed", { type: "number", describe: "Seed of init, split and data order (default 42)" })
        .option("resume", { type: "boolean", default: true, describe: "Continue from a checkpoint left by an interrupted run (--no-resume starts over)" })
        .option("threads", { type: "number", describe: "CPU threads (default: physical cores)" })
        .option("backend", { type: "string", default: "cpu", describe: `Native backend: ${nativeBackends.join(" | ")}` }) as unknown as Argv<TrainArgs>,
    handler: async (args) => {
        if (args["run-dir"] != null) {
            await runAndSummarize({ configFile: args.config ?? path.join(args["run-dir"], "config.yaml"), runDir: args["run-dir"], only: ["train"] });
            return;
        }
        const missing = (["base", "data", "agent", "out"] as const).filter((key) => args[key] == null);
        if (missing.length > 0)
            throw new InputError(`autoact train needs --run-dir DIR, or ${missing.map((key) => `--${key}`).join(", ")} (with --base, --data, --agent and --out)`);
        if (!(nativeBackends as readonly string[]).includes(args.backend))
            throw new InputError(`--backend: expected ${nativeBackends.join(", ")}; got "${args.backend}"`);
        if (args.schedule != null && !["constant", "linear", "cosine"].includes(args.schedule))
            throw new InputError(`--schedule: expected constant, linear or cosine; got "${args.schedule}"`);
        const progress = createTrainProgress();
        try {
            const results = await trainAgents({
                base: args.base!,
                data: args.data!,
                agent: args.agent!,
                outDir: args.out!,
                steps: args.steps,
                epochs: args.epochs,
                rank: args.rank,
                alpha: args.alpha,
                lr: args.lr,
                ctx: args.ctx,
                targets: args.targets?.split(",").map((t) => t.trim()).filter((t) => t !== ""),
                schedule: args.schedule as "constant" | "linear" | "cosine" | undefined,
                warmup: args.warmup,
                batch: args.batch,
                gradAccum: args["grad-accum"],
                evalFraction: args["eval-fraction"],
                evalEvery: args["eval-every"],
                checkpointEvery: args["checkpoint-every"],
                seed: args.seed,
                resume: args.resume,
                threads: args.threads,
                backend: args.backend as NativeBackend,
                onBuildProgress: progress.build,
                onStart: progress.start,
                onStep: progress.step
            });
            progress.done();
            for (const r of results) {
                process.stdout.write(`${r.agent}: ${r.adapterPath} (${r.done.steps} steps, loss ${r.done.first_loss?.toFixed(4) ?? "?"} -> ` +
                    `${r.done.loss?.toFixed(4) ?? "?"}${r.done.eval_loss != null ? `, eval ${r.done.eval_loss.toFixed(4)}` : ""}, ` +
                    `${r.done.tokens_per_s.toFixed(0)} tok/s), curve ${r.curvePath}\n`);
            }
        } finally {
            progress.done();
        }
    }
};
