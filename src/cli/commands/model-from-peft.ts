import type { Argv, CommandModule } from "yargs";
import { readPeftAdapter } from "../../deploy/peft.js";

interface FromPeftArgs {
    folder: string;
    base: string;
    out: string;
}

/** `autoact model from-peft DIR --base GGUF --out FILE`: a PEFT LoRA folder as a GGUF adapter. */
export const modelFromPeftCommand: CommandModule<object, FromPeftArgs> = {
    command: "from-peft <folder>",
    describe: "Write a PEFT LoRA folder (adapter_config.json, adapter_model.safetensors) as a GGUF adapter that llama.cpp and autoact load",
    builder: (yargs) => yargs
        .positional("folder", { type: "string", demandOption: true, describe: "PEFT adapter folder of the Hugging Face model the base was converted from" })
        .option("base", { type: "string", demandOption: true, describe: "The GGUF base (llama, qwen2 or qwen3)" })
        .option("out", { type: "string", demandOption: true, describe: "Output adapter .gguf" }) as unknown as Argv<FromPeftArgs>,
    handler: async (args) => {
        const result = await readPeftAdapter(args.folder, args.base, args.out);
        process.stdout.write(`wrote ${result.path}: rank ${result.rank}, ${result.targetModules.join(", ")}\n`);
    }
};
