import type { Argv, CommandModule } from "yargs";
import { summarizeGguf } from "../../gguf/reader.js";
import { checkGgufFileSync, describeAdapter } from "../../llm/gguf-check.js";
import { InputError } from "../../util/errors.js";
import { CHAT_TEMPLATES, SYNTH_ARCHS, SYNTH_TYPES, writeSyntheticModel, type SynthArch, type SynthChatTemplate, type SynthType } from "../../gguf/synth.js";
import { loadModelPresets } from "../../gguf/presets.js";
import { modelFromPeftCommand } from "./model-from-peft.js";
import { modelPeftCommand } from "./model-peft.js";
import { commandGroup } from "../command-group.js";

interface SynthArgs {
    arch?: string;
    "n-embd"?: number;
    layers?: number;
    heads?: number;
    "kv-heads"?: number;
    ff?: number;
    ctx?: number;
    type?: string;
    seed?: number;
    vocab?: number;
    preset?: string;
    "chat-template"?: string;
    "tied-embeddings"?: boolean;
    out: string;
}

const synth: CommandModule<object, SynthArgs> = {
    command: "synth",
    describe: `Write a random-weight ${SYNTH_ARCHS.join("/")} GGUF with a working tokenizer (for tests and benchmarks)`,
    builder: (yargs) => yargs
        .option("preset", { type: "string", describe: `Shape from models/presets.json (${Object.keys(loadModelPresets().synthetic).join(", ")}); flags override it` })
        .option("arch", { type: "string", describe: SYNTH_ARCHS.join(" | ") })
        .option("n-embd", { type: "number", describe: "Hidden size" })
        .option("layers", { type: "number", describe: "Transformer blocks" })
        .option("heads", { type: "number", describe: "Attention heads (must divide n-embd)" })
        .option("kv-heads", { type: "number", describe: "Key/value heads (must divide heads; default: heads)" })
        .option("ff", { type: "number", describe: "Feed-forward size" })
        .option("ctx", { type: "number", describe: "Context length in the metadata (default 2048)" })
        .option("type", { type: "string", describe: `${SYNTH_TYPES.join(" | ")} (default f32)` })
        .option("seed", { type: "number", describe: "Seed of the random weights (default 1)" })
        .option("vocab", { type: "number", describe: "Vocabulary size (default 512)" })
        .option("chat-template", { type: "string", describe: `${CHAT_TEMPLATES.join(" | ")} (default: chatml for qwen2 and qwen3, none for llama)` })
        .option("tied-embeddings", { type: "boolean", describe: "Leave out output.weight (reuse token_embd)" })
        .option("out", { type: "string", demandOption: true, describe: "Output .gguf file" }) as unknown as Argv<SynthArgs>,
    handler: async (args) => {
        const started = performance.now();
        const result = await writeSyntheticModel({
            preset: args.preset,
            arch: args.arch as SynthArch,
            nEmbd: args["n-embd"]!,
            layers: args.layers!,
            heads: args.heads!,
            kvHeads: args["kv-heads"],
            ff: args.ff!,
            ctx: args.ctx,
            type: args.type as SynthType | undefined,
            seed: args.seed,
            vocab: args.vocab,
            chatTemplate: args["chat-template"] as SynthChatTemplate | undefined,
            tiedEmbeddings: args["tied-embeddings"],
            out: args.out
        });
        const seconds = (performance.now() - started) / 1000;
        process.stdout.write(`wrote ${result.path}: ${result.params} parameters, ${result.bytes} bytes in ${seconds.toFixed(2)} s\n`);
    }
};

interface InfoArgs {
    file: string;
    json?: boolean;
}

const info: CommandModule<object, InfoArgs> = {
    command: "info <file>",
    describe: "Print a GGUF file's architecture, type, parameters, context and tensors",
    builder: (yargs) => yargs
        .positional("file", { type: "string", demandOption: true, describe: "GGUF file" })
        .option("json", { type: "boolean", default: false, describe: "Print metadata (long arrays shortened) and tensors as JSON" }) as unknown as Argv<InfoArgs>,
    handler: async (args) => {
        const gguf = checkGgufFileSync(args.file, "GGUF");
        if (!args.json) {
            const adapter = describeAdapter(gguf);
            process.stdout.write(adapter == null
                ? `${summarizeGguf(gguf)}\n`
                : `file: ${gguf.path}\nGGUF version: ${gguf.version}, ${gguf.fileSize} bytes, ${gguf.tensors.length} tensors\n${adapter}\n`);
            return;
        }
        const metadata = Object.fromEntries(Object.entries(gguf.metadata).map(([key, v]) => {
            const value = Array.isArray(v.value) && v.value.length > 16 ? `[${v.value.length} items]` : v.value;
            return [key, value];
        }));
        process.stdout.write(`${JSON.stringify({
            path: gguf.path, version: gguf.version, fileSize: gguf.fileSize, metadata,
            tensors: gguf.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type, offset: t.offset, bytes: t.bytes }))
        }, (_, v: unknown) => typeof v === "bigint" ? v.toString() : v, 2)}\n`);
    }
};

export const modelCommand = commandGroup("model", "Synthetic models, GGUF inspection, adapters to and from PEFT (model synth, info, peft, from-peft)",
    [synth, info, modelPeftCommand, modelFromPeftCommand]);
