import { autoactCacheDir } from "../util/cache-dir.js";
import fs from "node:fs";
import path from "node:path";
import { readGgufInfo, ggufArchitecture, type GgufInfo } from "../gguf/reader.js";
import { syntheticPreset } from "../gguf/presets.js";
import { SYNTH_TYPES, writeSyntheticModel, type SynthType } from "../gguf/synth.js";
import { GgmlType } from "../gguf/types.js";
import { loraAdapterMetadata } from "../gguf/lora.js";
import { writeGguf } from "../gguf/writer.js";
import { InputError } from "../util/errors.js";
import { requireFile } from "../util/fs.js";
import { targetModules } from "../train/options.js";

/** Where `synth:` models and `zero:` adapters are written: kept between runs (they are deterministic). */
export function benchCacheDir(): string {
    return path.join(autoactCacheDir(), "bench");
}

/**
 * A model for a benchmark: a GGUF path, or `synth:PRESET[:TYPE]` (a synthetic model of a preset
 * in models/presets.json, e.g. `synth:100m`, `synth:0.5b:f16`), written once into `dir`.
 */
export async function resolveBenchModel(spec: string, dir = benchCacheDir()): Promise<string> {
    if (!spec.startsWith("synth:")) {
        requireFile(spec, "model");
        return path.resolve(spec);
    }
    const [, preset, type] = spec.split(":");
    if (preset == null || preset === "")
        throw new InputError(`--model ${spec}: expected synth:PRESET[:TYPE], e.g. synth:100m or synth:0.5b:f16`);
    const shape = syntheticPreset(preset);
    const weightType = (type ?? shape.type ?? "f32") as SynthType;
    if (!(SYNTH_TYPES as readonly string[]).includes(weightType))
        throw new InputError(`--model ${spec}: unknown type "${type}" (expected one of ${SYNTH_TYPES.join(", ")})`);
    const out = path.join(dir, `synth-${preset}-${weightType}.gguf`);
    if (!fs.existsSync(out))
        await writeSyntheticModel({ preset, type: weightType, seed: 1, out });
    return out;
}

/** Vocabulary size of a GGUF (token ids for benchmarks are drawn below it). */
export function ggufVocabSize(info: GgufInfo): number {
    const tokens = info.metadata["tokenizer.ggml.tokens"];
    if (tokens != null && Array.isArray(tokens.value))
        return tokens.value.length;
    const arch = ggufArchitecture(info);
    const size = arch == null ? undefined : info.metadata[`${arch}.vocab_size`]?.value;
    if (typeof size === "number" || typeof size === "bigint")
        return Number(size);
    throw new InputError(`${info.path}: no tokenizer.ggml.tokens and no vocab_size: cannot pick token ids`);
}

/** The weights a LoRA adapter of the trainer targets (attention and feed-forward projections). */
/** Modules a LoRA adapter can target (the trainer's table declares them). */
export const loraTargets = targetModules;

export interface ZeroAdapterOptions {
    /** Base model GGUF: the adapter gets one pair of tensors per targeted 2-D weight. */
    model: string;
    out: string;
    /** LoRA rank. Defaults to 8. */
    rank?: number;
    /** Targeted weights (names as in `loraTargets`). Defaults to all seven. */
    targets?: readonly string[];
}

/**
 * Writes a LoRA adapter whose B matrices are zero (an exact no-op that costs what a trained
 * adapter of the same rank costs), with A small and non-zero so nothing can skip it.
 */
export async function writeZeroLoraAdapter(options: ZeroAdapterOptions): Promise<string> {
    const rank = options.rank ?? 8;
    if (!Number.isInteger(rank) || rank < 1)
        throw new InputError(`LoRA rank must be a positive integer, got ${rank}`);
    const targets = new Set(options.targets ?? loraTargets);
    const info = await readGgufInfo(options.model);
    const arch = ggufArchitecture(info);
    if (arch == null)
        throw new InputError(`${options.model}: no general.architecture`);
    const tensors = [];
    for (const tensor of info.tensors) {
        const match = /^blk\.\d+\.(\w+)\.weight$/.exec(tensor.name);
        if (match == null || !targets.has(match[1]!) || tensor.dims.length !== 2)
            continue;
        const [nIn, nOut] = tensor.dims as [number, number];
        const a = new Float32Array(nIn * rank).fill(1 / Math.sqrt(nIn));
        tensors.push({ name: `${tensor.name}.lora_a`, dims: [nIn, rank], type: GgmlType.F32, data: a });
        tensors.push({ name: `${tensor.name}.lora_b`, dims: [rank, nOut], type: GgmlType.F32, data: new Float32Array(rank * nOut) });
    }
    if (tensors.length === 0)
        throw new InputError(`${options.model}: no weights named ${[...targets].join(", ")} to attach a LoRA adapter to`);
    await writeGguf({
        path: options.out,
        metadata: loraAdapterMetadata(arch, rank),
        tensors
    });
    return options.out;
}

/**
 * Adapter files for `--lora`: paths, or `zero:RANK` (a zero-B adapter of that rank over all
 * seven projections of `model`, written once into `dir`).
 */
export async function resolveLoraSpecs(specs: readonly string[], model: string, dir = benchCacheDir()): Promise<string[]> {
    const out: string[] = [];
    for (const spec of specs) {
        if (spec.startsWith("zero:")) {
            const rank = Number(spec.slice(5));
            if (!Number.isInteger(rank) || rank < 1)
                throw new InputError(`--lora ${spec}: expected zero:RANK with a positive integer rank`);
            const stat = fs.statSync(model);
            const file = path.join(dir, `zero-r${rank}-${path.basename(model, ".gguf")}-${stat.size}.lora.gguf`);
            if (!fs.existsSync(file))
                await writeZeroLoraAdapter({ model, out: file, rank });
            out.push(file);
        } else {
            requireFile(spec, "LoRA adapter");
            out.push(path.resolve(spec));
        }
    }
    return out;
}
