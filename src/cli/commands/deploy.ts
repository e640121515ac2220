import type { Argv, CommandModule } from "yargs";
import { writeDeployment } from "../../deploy/deploy.js";
import { sharedOptions } from "../shared-options.js";

interface DeployArgs {
    "run-dir": string;
    out?: string;
    port?: number;
    parallel?: number;
    "llama-server"?: string;
    "hf-model"?: string;
}

/** `autoact deploy --run-dir DIR`: llama-server's command and an Ollama Modelfile per sub-agent. */
export const deployCommand: CommandModule<object, DeployArgs> = {
    command: "deploy",
    describe: "Write what serves a run's sub-agents: llama-server's command line (base + three adapters), an Ollama Modelfile and a PEFT adapter (vLLM) per agent",
    builder: (yargs) => yargs
        .option("run-dir", { type: "string", demandOption: true, describe: "Run directory with adapters/{plan,tool,reflect}.gguf" })
        .option("out", { type: "string", describe: "Output folder (default: <run-dir>/deploy)" })
        .option("port", { type: "number", describe: "llama-server's port (default 8080)" })
        .option("parallel", { type: "number", describe: "llama-server's slots (default: the run's model.parallel)" })
        .option("llama-server", sharedOptions.llamaServer)
        .option("hf-model", { type: "string", describe: "The Hugging Face model the GGUF base was converted from, for vLLM's command (default: a placeholder, HF_MODEL)" }) as unknown as Argv<DeployArgs>,
    handler: async (args) => {
        const result = await writeDeployment({ runDir: args["run-dir"], out: args.out, port: args.port, parallel: args.parallel, llamaServer: args["llama-server"], hfModel: args["hf-model"] });
        if (result.ollamaWarning != null)
            process.stderr.write(`deploy: warning: ${result.ollamaWarning}\n`);
        const peft = "peft" in result.vllm ? Object.values(result.vllm.peft) : [];
        process.stdout.write([result.script, ...Object.values(result.modelfiles), ...peft, result.readme].join("\n") + "\n");
    }
};
