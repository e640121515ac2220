import type { Argv, CommandModule } from "yargs";
import { importOriginal } from "../../pipeline/import-original.js";

interface ImportArgs {
    config: string;
    "run-dir": string;
    trajectories?: string;
    instruct?: string;
    plan?: string;
    action?: string;
    reflect?: string;
    set?: string[];
}

export const importCommand: CommandModule<object, ImportArgs> = {
    command: "import",
    describe: "Read the original AutoAct's files (trajectory JSONL, self-instruct JSON, data_plan/action/reflect.json) into a run directory's tables",
    builder: (yargs) => yargs
        .option("config", { type: "string", demandOption: true, describe: "Pipeline YAML the run belongs to (saved as <run-dir>/config.yaml)" })
        .option("run-dir", { type: "string", demandOption: true, describe: "Run directory to write the tables into" })
        .option("trajectories", { type: "string", describe: "The original's trajectory JSONL ({question, answer, correct, prompt}) -> tasks, tools, trajectories" })
        .option("instruct", { type: "string", describe: "The original's self-instruct JSON ([{Question, Answer}]) -> tasks" })
        .option("plan", { type: "string", describe: "The original's data_plan.json -> plan samples" })
        .option("action", { type: "string", describe: "The original's data_action.json -> tool samples" })
        .option("reflect", { type: "string", describe: "The original's data_reflect.json -> reflect samples" })
        .option("set", { type: "string", array: true, describe: "Override a config value: --set split.finish_by=plan (repeatable)" }) as unknown as Argv<ImportArgs>,
    handler: async (args) => {
        const samples = args.plan ?? args.action ?? args.reflect ? { plan: args.plan, tool: args.action, reflect: args.reflect } : undefined;
        const result = await importOriginal({
            runDir: args["run-dir"], configFile: args.config, set: args.set,
            trajectories: args.trajectories, instruct: args.instruct, samples
        });
        process.stdout.write(`imported into ${args["run-dir"]}: ${result.written.join(", ")}\n` +
            `tasks ${result.tasks}, trajectories ${result.trajectories} (${result.correct} marked correct), tools ${result.tools.join(", ")}, ` +
            `samples plan ${result.samples.plan} / tool ${result.samples.tool} / reflect ${result.samples.reflect}\n`);
    }
};
