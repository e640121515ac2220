import path from "node:path";
import type { Argv, CommandModule } from "yargs";
import type { StageName } from "../../pipeline/config-schema.js";
import type { SubAgentAdapters } from "../../pipeline/stages/eval.js";
import { InputError } from "../../util/errors.js";
import { RunDir } from "../../pipeline/run-dir.js";
import { evalMethods } from "../../data/schemas.js";
import { parseMethods } from "../../pipeline/eval-methods.js";
import { pipelineRunOptions, runAndSummarize, withPipelineOptions, type PipelineArgs } from "../pipeline-options.js";

interface StageArgs extends PipelineArgs {
    config?: string;
    plan?: string;
    tool?: string;
    reflect?: string;
    methods?: string[];
}

const descriptions: Partial<Record<StageName, string>> = {
    instruct: "Self-instruct: write new tasks from the seed examples (tasks.arrow)",
    "select-tools": "Tool selection by the meta-agent (tools.arrow)",
    synth: "Trajectory synthesis: zero-shot ReAct over parallel sequences (trajectories.arrow)",
    filter: "Keep trajectories whose final answer is right (filtered.arrow)",
    split: "Division of labor: plan / tool / reflect samples (samples.arrow)",
    eval: "Evaluation: group planning, zero-/few-shot ReAct and CoT, the ablations (eval-<set>.arrow, report.md)"
};

/**
 * One command per pipeline stage: runs that stage on a run directory, with the config the
 * run saved there (config.yaml) unless --config names another pipeline file.
 */
export function stageCommand(stage: StageName): CommandModule<object, StageArgs> {
    return {
        command: stage,
        describe: descriptions[stage] ?? stage,
        builder: (yargs) => {
            let built = withPipelineOptions(yargs)
                .option("config", { type: "string", describe: "Pipeline YAML (default: <run-dir>/config.yaml)" });
            if (stage === "eval") {
                built = built
                    .option("plan", { type: "string", describe: "Plan agent's adapter GGUF (default: <run-dir>/adapters/plan.gguf)" })
                    .option("tool", { type: "string", describe: "Tool agent's adapter GGUF" })
                    .option("reflect", { type: "string", describe: "Reflect agent's adapter GGUF" })
                    .option("methods", { type: "string", array: true, describe: `Methods to evaluate, or all (${evalMethods.join(", ")}); overrides eval.methods` });
            }
            return built as unknown as Argv<StageArgs>;
        },
        handler: async (args) => {
            const runDir = args["run-dir"];
            if (runDir == null && args.config == null)
                throw new InputError(`autoact ${stage} needs --run-dir DIR (a run directory with config.yaml) or --config FILE`);
            // Adapters named on the command line replace the run directory's; an agent left out runs on the base model.
            const named = { plan: args.plan, tool: args.tool, reflect: args.reflect };
            const given = Object.entries(named).filter(([, file]) => file != null);
            let adapters: SubAgentAdapters | undefined;
            if (given.length > 0) {
                adapters = Object.fromEntries(given.map(([agent, file]) => [agent, path.resolve(file!)])) as SubAgentAdapters;
                const missing = Object.keys(named).filter((agent) => !(agent in adapters!));
                if (missing.length > 0)
                    process.stderr.write(`eval: the ${missing.join(" and ")} agent${missing.length > 1 ? "s run" : " runs"} on the base model (no --${missing.join(" or --")})\n`);
            }
            const configFile = args.config ?? new RunDir(runDir!).requireConfig();
            const options = pipelineRunOptions(args);
            if (args.methods != null)
                options.set = [...(options.set ?? []), `eval.methods=[${parseMethods(args.methods).join(", ")}]`];
            await runAndSummarize({
                configFile,
                only: [stage],
                adapters,
                continueRun: true,
                ...options
            });
        }
    };
}
