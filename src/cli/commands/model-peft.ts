import type { Argv, CommandModule } from "yargs";
import { writePeftAdapter } from "../../deploy/peft.js";

interface PeftArgs {
    adapter: string;
    base: string;
    out: string;
    "hf-model"?: string;
}

/** `autoact model peft ADAPTER --base GGUF --out DIR`: one GGUF LoRA adapter as a PEFT folder (vLLM, transformers). */
export const modelPeftCommand: CommandModule<object, PeftArgs> = {
    command: "peft <adapter>",
    describe: "Write a GGUF LoRA adapter as a PEFT folder (adapter_config.json, adapter_model.safetensors) that vLLM and transformers load",
    builder: (yargs) => yargs
        .positional("adapter", { type: "string", demandOption: true, describe: "GGUF LoRA adapter (e.g. from autoact train)" })
        .option("base", { type: "string", demandOption: true, describe: "The GGUF base it was trained on (llama, qwen2 or qwen3)" })
        .option("out", { type: "string", demandOption: true, describe: "Output folder" })
        .option("hf-model", { type: "string", describe: "The Hugging Face model of the base, recorded in adapter_config.json (default: the base's general.name)" }) as unknown as Argv<PeftArgs>,
    handler: async (args) => {
        const result = await writePeftAdapter(args.adapter, args.base, args.out, args["hf-model"]);
        process.stdout.write(`wrote ${result.path}: rank ${result.rank}, ${result.targetModules.join(", ")}\n`);
    }
};
