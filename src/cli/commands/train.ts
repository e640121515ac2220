import path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { runAndSummarize } from "../pipeline-options.js";
import { sharedOptions } from "../shared-options.js";
import { InputError } from "../../util/errors.js";
import { RunDir } from "../../pipeline/run-dir.js";
import { promptTemplates, type PromptTemplate } from "../../llm/prompt-format.js";
import { createTrainProgress, nativeBackends, trainAgents, trainCliOptions, trainOptionsFromCli, type NativeBackend } from "../../train/index.js";

/** The pipeline and file flags; the trainer's options come from its table (src/train/options.ts). */
interface TrainArgs {
    "run-dir"?: string;
    config?: string;
    limit?: number;
    force: boolean;
    base?: string;
    data?: string;
    agent?: string;
    template: PromptTemplate;
    out?: string;
    "adapter-in"?: string;
    resume: boolean;
    threads?: number;
    "memory-available"?: number;
    backend: string;
    [trainOption: string]: unknown;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
    command: "train",
    describe: "Train LoRA adapters (plan, tool, reflect) with the native trainer: a pipeline's (--run-dir) or on their own (--base --data --agent --out)",
    builder: (yargs) => yargs
        .option("run-dir", { type: "string", describe: "Run the pipeline's train stage on this run directory (its config.yaml and samples.arrow)" })
        .option("config", { type: "string", describe: "With --run-dir: pipeline YAML instead of <run-dir>/config.yaml" })
        .option("limit", { type: "number", describe: "With --run-dir: cap the samples per adapter (default: the run's --limit; 0 = none)" })
        .option("force", { type: "boolean", default: false, describe: "With --run-dir: train every adapter again, even those up to date" })
        .option("base", { type: "string", describe: "Base model GGUF" })
        .option("data", { type: "string", describe: "samples.arrow, or JSON/JSONL rows of {input, output, agent?}" })
        .option("agent", { type: "string", describe: "plan | tool | reflect | all (each agent in the data)" })
        .option("template", { type: "string", choices: promptTemplates, default: "auto", describe: "Prompt template the samples are formatted with: the one the agents will be asked with (a run's model.template)" })
        .option("out", { type: "string", describe: "Output folder: <agent>.gguf and train-<agent>.arrow" })
        .option("adapter-in", { type: "string", describe: "Train this adapter GGUF further instead of a fresh one (an earlier run's, or `autoact model from-peft`'s): its rank, alpha and targets are kept; with --agent all, every agent starts from it" })
        .options(trainCliOptions())
        .option("resume", { type: "boolean", default: true, describe: "Continue from a checkpoint left by an interrupted run (--no-resume starts over)" })
        .option("threads", sharedOptions.threads)
        .option("memory-available", { type: "number", describe: "MiB of memory the trainer plans with: on a CPU it keeps the weights' copies and every layer's activations only where they fit, else makes the copies in each pass, then recomputes the first layers' activations, then every layer's (default: what the machine has free at start)" })
        .option("backend", { type: "string", default: "cpu", describe: `Native backend: ${nativeBackends.join(" | ")}` }) as unknown as Argv<TrainArgs>,
    handler: async (args) => {
        if (args["run-dir"] != null) {
            const alone = (["adapter-in", "memory-available"] as const).filter((flag) => args[flag] != null);
            if (alone.length > 0)
                throw new InputError(`${alone.map((flag) => `--${flag}`).join(" and ")}: for training on its own (--base --data --agent --out), not a run's train stage (--run-dir)`);
            await runAndSummarize({
                configFile: args.config ?? new RunDir(args["run-dir"]).requireConfig(), runDir: args["run-dir"], only: ["train"],
                continueRun: true, limit: args.limit, force: args.force
            });
            return;
        }
        const missing = (["base", "data", "agent", "out"] as const).filter((key) => args[key] == null);
        if (missing.length > 0)
            throw new InputError(`autoact train needs --run-dir DIR, or all of --base, --data, --agent and --out (missing: ${missing.map((key) => `--${key}`).join(", ")})`);
        if (!(nativeBackends as readonly string[]).includes(args.backend))
            throw new InputError(`--backend: expected ${nativeBackends.join(", ")}; got "${args.backend}"`);
        const { values, problems } = trainOptionsFromCli(args);
        if (problems.length > 0)
            throw new InputError(problems.join("; "));
        const progress = createTrainProgress();
        try {
            const results = await trainAgents({
                base: args.base!,
                data: args.data!,
                agent: args.agent!,
                template: args.template,
                outDir: args.out!,
                adapterIn: args["adapter-in"],
                ...values,
                resume: args.resume,
                threads: args.threads,
                memoryAvailableMib: args["memory-available"],
                backend: args.backend as NativeBackend,
                onBuildProgress: progress.build,
                onFit: progress.fit,
                onWarning: progress.warning,
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
