import type { Argv, CommandModule } from "yargs";
import type { StageName } from "../../pipeline/config-schema.js";
import { pipelineRunOptions, runAndSummarize, stageChoices, withPipelineOptions, type PipelineArgs } from "../pipeline-options.js";

interface RunArgs extends PipelineArgs {
    pipeline: string;
    from?: StageName;
    until?: StageName;
    skip?: StageName[];
}

export const runCommand: CommandModule<object, RunArgs> = {
    command: "run <pipeline>",
    describe: "Run a pipeline end to end: instruct, select-tools, synth, filter, split, train, eval",
    builder: (yargs) => withPipelineOptions(yargs
        .positional("pipeline", { type: "string", demandOption: true, describe: "Pipeline YAML file, e.g. pipelines/hotpotqa.yaml" })
        .option("from", { type: "string", choices: stageChoices, describe: "First stage to run" })
        .option("until", { type: "string", choices: stageChoices, describe: "Last stage to run" })
        .option("skip", { type: "string", array: true, choices: stageChoices, describe: "Stages not to run (repeatable)" })) as unknown as Argv<RunArgs>,
    handler: async (args) => {
        await runAndSummarize({
            configFile: args.pipeline,
            from: args.from,
            until: args.until,
            skip: args.skip,
            ...pipelineRunOptions(args)
        });
    }
};
