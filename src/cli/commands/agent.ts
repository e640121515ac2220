import type { Argv, CommandModule } from "yargs";
import { askAgents } from "../../deploy/agent.js";

interface AgentArgs {
    question: string;
    "run-dir": string;
    server?: string;
    model?: string;
    seed?: number;
}

/** `autoact agent --run-dir DIR [--server URL | --model GGUF] "question"`: one answer by group planning. */
export const agentCommand: CommandModule<object, AgentArgs> = {
    command: "agent <question>",
    describe: "Answer one question by group planning with a run's sub-agents, on a server (--server) or here (--model)",
    builder: (yargs) => yargs
        .positional("question", { type: "string", demandOption: true, describe: "The question" })
        .option("run-dir", { type: "string", demandOption: true, describe: "Run directory: config, selected tools, corpus, adapters" })
        .option("server", { type: "string", describe: "OpenAI-compatible server serving the sub-agents (see autoact deploy)" })
        .option("model", { type: "string", describe: "Run this GGUF here instead of the run's model" })
        .option("seed", { type: "number", describe: "Seed of the sampled calls (default: from the run's eval seed)" }) as unknown as Argv<AgentArgs>,
    handler: async (args) => {
        const result = await askAgents({ runDir: args["run-dir"], question: args.question, server: args.server, model: args.model, seed: args.seed });
        for (const step of result.steps)
            process.stderr.write(`${step.index + 1}. ${step.thought} | ${step.action}[${step.argument}] | ${step.observation}\n`);
        process.stderr.write(`${result.ending}\n`);
        // no answer: nothing on stdout and status 1, so that a script can tell it from an empty answer
        if (result.finalAnswer == null)
            process.exitCode = 1;
        else
            process.stdout.write(`${result.finalAnswer}\n`);
    }
};
