import path from "node:path";
import type { Argv } from "yargs";
import { stageNames, type StageName } from "../pipeline/config-schema.js";
import { runPipeline, type RunPipelineOptions } from "../pipeline/runner.js";

/** Flags shared by `autoact run` and the per-stage commands. */
export interface PipelineArgs {
    model?: string;
    "run-dir"?: string;
    limit?: number;
    set?: string[];
    data?: string[];
    force: boolean;
}

export function withPipelineOptions<T>(yargs: Argv<T>): Argv<T & PipelineArgs> {
    return yargs
        .option("model", { type: "string", describe: "GGUF file, hf: URI or preset name (overrides model.path)" })
        .option("run-dir", { type: "string", describe: "Run directory (autoact run, or a stage command with --config: default runs/<pipeline name>)" })
        .option("limit", { type: "number", describe: "Cap every stage's item count (tasks, trajectories, eval questions) for a quick trial (a stage command keeps the run's; 0 = none)" })
        .option("set", { type: "string", array: true, describe: "Override a config value: --set synth.max_steps=10 (repeatable)" })
        .option("data", { type: "string", array: true, describe: "Folder searched first for data files (repeatable)" })
        .option("force", { type: "boolean", default: false, describe: "Rerun stages even when their inputs are unchanged" }) as Argv<T & PipelineArgs>;
}

export function pipelineRunOptions(args: PipelineArgs): Omit<RunPipelineOptions, "configFile"> {
    return {
        model: args.model,
        runDir: args["run-dir"],
        limit: args.limit,
        set: args.set,
        dataDirs: args.data,
        force: args.force
    };
}

/** Prints what ran and where the report is (stdout carries only this summary). */
export async function runAndSummarize(options: RunPipelineOptions): Promise<void> {
    const result = await runPipeline(options);
    for (const outcome of result.stages) {
        if (outcome.status !== "skipped")
            process.stdout.write(`${outcome.stage.padEnd(12)} ${outcome.status.padEnd(10)} ${outcome.seconds.toFixed(1)}s\n`);
    }
    process.stdout.write(`report: ${path.resolve(result.report)}\n`);
}

export const stageChoices = stageNames as readonly StageName[];
