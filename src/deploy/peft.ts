import fs from "node:fs";
import path from "node:path";
import { readGgufInfo, readTensorData, readTensorValues, ggufArchitecture, ggufDecoderShape, metadataValue } from "../gguf/reader.js";
import { loraAdapterMetadata } from "../gguf/lora.js";
import { bf16BitsToF32, f16BitsToF32 } from "../gguf/quantize.js";
import { GgmlType } from "../gguf/types.js";
import { writeGguf, type GgufTensorSpec } from "../gguf/writer.js";
import { targetModules, type TargetModule } from "../train/options.js";
import { checkAdapterFitsBase } from "../llm/gguf-check.js";
import { InputError } from "../util/errors.js";
import { writeFileAtomicSync } from "../util/fs.js";

/**
 * GGUF LoRA adapters and PEFT adapter folders (adapter_config.json, adapter_model.safetensors),
 * both ways: PEFT's is what vLLM (`--lora-modules name=folder`) and transformers load. The
 * tensors are the same numbers; only names, and for llama the row order of q and k, differ.
 */

/** Hugging Face's module name of each target, under `model.layers.N.`. */
const hfModules: Record<TargetModule, string> = {
    attn_q: "self_attn.q_proj", attn_k: "self_attn.k_proj", attn_v: "self_attn.v_proj", attn_output: "self_attn.o_proj",
    ffn_gate: "mlp.gate_proj", ffn_up: "mlp.up_proj", ffn_down: "mlp.down_proj"
};

/**
 * Architectures whose GGUF tensors are Hugging Face's `model.layers.N.*` one to one. llama.cpp's
 * converter reorders the rows of llama's q and k weights (each head's rotary pairs made
 * adjacent), so an adapter's lora_b rows for them are put back in Hugging Face's order.
 */
const peftLayouts: Record<string, { reordersQK: boolean }> = {
    llama: { reordersQK: true },
    qwen2: { reordersQK: false },
    qwen3: { reordersQK: false }
};

export const peftArchitectures = Object.keys(peftLayouts);

export interface PeftAdapter {
    /** The folder (PEFT) or file (GGUF) written. */
    path: string;
    rank: number;
    /** PEFT's names of the adapted modules (q_proj, v_proj, ...). */
    targetModules: string[];
}

/** Writes `adapter` (a GGUF LoRA of `base`) as a PEFT folder `dir`; `hfModel` names the base's Hugging Face model. */
export async function writePeftAdapter(adapter: string, base: string, dir: string, hfModel?: string): Promise<PeftAdapter> {
    const info = await readGgufInfo(adapter);
    const baseInfo = await readGgufInfo(base);
    const arch = ggufArchitecture(info) ?? "";
    const layout = peftLayouts[arch];
    if (layout == null)
        throw new InputError(`${adapter}: no PEFT export for the ${arch || "unknown"} architecture (it knows ${peftArchitectures.join(", ")})`);
    // every adapted tensor's shape against the base's: q/k rows are reordered by the base's heads
    checkAdapterFitsBase(adapter, base);
    const { heads, kvHeads } = ggufDecoderShape(baseInfo);

    const tensors: SafetensorsEntry[] = [];
    const modules = new Set<string>();
    let rank = 0;
    for (const tensor of info.tensors) {
        const match = /^blk\.(\d+)\.([a-z_]+)\.weight\.lora_(a|b)$/.exec(tensor.name);
        const target = match?.[2] as TargetModule | undefined;
        if (match == null || target == null || !targetModules.includes(target))
            throw new InputError(`${adapter}: tensor ${tensor.name} is not a LoRA tensor of a known target (${targetModules.join(", ")})`);
        const [, layer, , side] = match;
        // ggml's [ne0, ne1] is a row-major [ne1][ne0]: lora_a [r][in] and lora_b [out][r], as PEFT's A and B
        const [cols, rows] = [tensor.dims[0]!, tensor.dims[1] ?? 1];
        rank = side === "a" ? rows : cols;
        let data = tensor.type === GgmlType.F32 || tensor.type === GgmlType.F16
            ? await readTensorData(info, tensor.name)
            : new Uint8Array((await readTensorValues(info, tensor.name)).buffer);
        const dtype = tensor.type === GgmlType.F16 ? "F16" : "F32";
        if (side === "b" && layout.reordersQK && (target === "attn_q" || target === "attn_k"))
            data = reorderRows(data, rows, data.length / rows, target === "attn_q" ? heads : kvHeads, "hf");
        modules.add(hfModules[target].split(".")[1]!);
        tensors.push({ name: `base_model.model.model.layers.${layer}.${hfModules[target]}.lora_${side.toUpperCase()}.weight`, dtype, shape: [rows, cols], data });
    }
    if (tensors.length === 0)
        throw new InputError(`${adapter}: no LoRA tensors`);
    const alpha = metadataValue(info, "adapter.lora.alpha");
    fs.mkdirSync(dir, { recursive: true });
    const targets = [...modules].sort();
    writeFileAtomicSync(path.join(dir, "adapter_config.json"), JSON.stringify({
        peft_type: "LORA", task_type: "CAUSAL_LM", r: rank,
        // llama.cpp scales by alpha / r, 1 when alpha is 0; PEFT by lora_alpha / r
        lora_alpha: typeof alpha === "number" && alpha > 0 ? alpha : rank,
        target_modules: targets, lora_dropout: 0, bias: "none", fan_in_fan_out: false, use_rslora: false, inference_mode: true,
        base_model_name_or_path: hfModel ?? String(metadataValue(baseInfo, "general.name") ?? path.basename(base))
    }, null, 2) + "\n");
    writeFileAtomicSync(path.join(dir, "adapter_model.safetensors"), safetensors(tensors));
    return { path: dir, rank, targetModules: targets };
}

/**
 * Writes the PEFT folder `dir` (a LoRA of the Hugging Face model that `base` was converted from)
 * as the GGUF adapter `out`, which llama.cpp, autoact's engine and `autoact train --adapter-in`
 * load. Only LoRA weights of the seven projections convert; anything else is refused by name.
 */
export async function readPeftAdapter(dir: string, base: string, out: string): Promise<PeftAdapter> {
    const configFile = path.join(dir, "adapter_config.json");
    const weightsFile = path.join(dir, "adapter_model.safetensors");
    for (const file of [configFile, weightsFile])
        if (!fs.existsSync(file))
            throw new InputError(`${dir}: no ${path.basename(file)} (a PEFT folder holds adapter_config.json and adapter_model.safetensors)`);
    let config: Record<string, unknown>;
    try {
        config = JSON.parse(fs.readFileSync(configFile, "utf8"));
    } catch (error) {
        throw new InputError(`${configFile}: not JSON (${(error as Error).message})`);
    }
    const rank = Number(config.r);
    const loraAlpha = Number(config.lora_alpha ?? rank);
    if (config.peft_type !== "LORA" || !(rank > 0) || !(loraAlpha > 0))
        throw new InputError(`${configFile}: not a LoRA config (peft_type ${JSON.stringify(config.peft_type)}, r ${JSON.stringify(config.r)})`);
    if (config.fan_in_fan_out === true)
        throw new InputError(`${configFile}: fan_in_fan_out adapters (transposed weights) are not converted`);
    const baseInfo = await readGgufInfo(base);
    const arch = ggufArchitecture(baseInfo) ?? "";
    const layout = peftLayouts[arch];
    if (layout == null)
        throw new InputError(`${base}: no PEFT import for the ${arch || "unknown"} architecture (it knows ${peftArchitectures.join(", ")})`);
    const { heads, kvHeads } = ggufDecoderShape(baseInfo);
    const baseShapes = new Map(baseInfo.tensors.map((t) => [t.name, t.dims]));
    const targetOf = new Map(Object.entries(hfModules).map(([target, module]) => [module, target as TargetModule]));

    const tensors: GgufTensorSpec[] = [];
    const modules = new Set<string>();
    for (const entry of readSafetensors(weightsFile)) {
        const match = /^base_model\.model\.model\.layers\.(\d+)\.(\w+\.\w+)\.lora_(A|B)(?:\.default)?\.weight$/.exec(entry.name);
        const target = match == null ? undefined : targetOf.get(match[2]!);
        if (match == null || target == null)
            throw new InputError(`${weightsFile}: ${entry.name} is not the LoRA A or B of a projection (${Object.values(hfModules).join(", ")})`);
        const weight = `blk.${match[1]}.${target}.weight`;
        const [nIn, nOut] = baseShapes.get(weight) ?? [];
        const side = match[3] === "A" ? "a" : "b";
        const expected = side === "a" ? [rank, nIn] : [nOut, rank];
        if (nIn == null || entry.shape.length !== 2 || entry.shape[0] !== expected[0] || entry.shape[1] !== expected[1])
            throw new InputError(`${weightsFile}: ${entry.name} has shape [${entry.shape.join(", ")}], but ${base} ${nIn == null ? `has no ${weight}` : `needs [${expected.join(", ")}]`}`);
        let data = new Uint8Array(entry.values.buffer, entry.values.byteOffset, entry.values.byteLength);
        if (side === "b" && layout.reordersQK && (target === "attn_q" || target === "attn_k"))
            data = reorderRows(data, nOut!, rank * 4, target === "attn_q" ? heads : kvHeads, "gguf");
        modules.add(match[2]!.split(".")[1]!);
        tensors.push({ name: `${weight}.lora_${side}`, dims: [entry.shape[1]!, entry.shape[0]!], type: GgmlType.F32, data });
    }
    if (tensors.length === 0)
        throw new InputError(`${weightsFile}: no LoRA tensors`);
    // llama.cpp scales by alpha / r; rsLoRA by lora_alpha / sqrt(r)
    const alpha = config.use_rslora === true ? loraAlpha * Math.sqrt(rank) : loraAlpha;
    await writeGguf({ path: out, metadata: loraAdapterMetadata(arch, alpha), tensors });
    return { path: out, rank, targetModules: [...modules].sort() };
}

/**
 * The rows of a q or k projection in Hugging Face's order ("hf") or llama.cpp's ("gguf"): its
 * converter stores each head's row h*D + i*D/2 + j (i = 0, 1 the rotary halves) at h*D + 2j + i.
 */
function reorderRows(data: Uint8Array, rows: number, rowBytes: number, heads: number, to: "hf" | "gguf"): Uint8Array {
    const perHead = rows / heads;
    if (!Number.isInteger(perHead) || perHead % 2 !== 0)
        throw new InputError(`cannot reorder ${rows} rows into ${heads} heads of rotary pairs`);
    const out = new Uint8Array(data.length);
    for (let h = 0; h < heads; h++) {
        for (let i = 0; i < 2; i++) {
            for (let j = 0; j < perHead / 2; j++) {
                const gguf = h * perHead + 2 * j + i;
                const hf = h * perHead + i * (perHead / 2) + j;
                const [from, into] = to === "hf" ? [gguf, hf] : [hf, gguf];
                out.set(data.subarray(from * rowBytes, (from + 1) * rowBytes), into * rowBytes);
            }
        }
    }
    return out;
}

interface SafetensorsEntry {
    name: string;
    dtype: "F32" | "F16";
    shape: number[];
    data: Uint8Array;
}

/** A safetensors file's tensors as float32 (F32, F16 and BF16 files), in file order. */
function readSafetensors(file: string): { name: string; shape: number[]; values: Float32Array }[] {
    const bytes = fs.readFileSync(file);
    const bad = (why: string) => new InputError(`${file}: not a safetensors file (${why})`);
    if (bytes.length < 8)
        throw bad("too short");
    const length = Number(bytes.readBigUInt64LE(0));
    if (length > bytes.length - 8)
        throw bad(`a header of ${length} bytes in a ${bytes.length}-byte file`);
    let header: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] }>;
    try {
        header = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8"));
    } catch {
        throw bad("its header is not JSON");
    }
    const data = bytes.subarray(8 + length);
    const out = [];
    for (const [name, info] of Object.entries(header)) {
        if (name === "__metadata__")
            continue;
        const [start, end] = info.data_offsets ?? [0, -1];
        const count = (info.shape ?? []).reduce((a, b) => a * b, 1);
        const width = { F32: 4, F16: 2, BF16: 2 }[info.dtype ?? ""];
        if (width == null)
            throw new InputError(`${file}: ${name} is ${info.dtype}, not F32, F16 or BF16`);
        if (end - start !== count * width || end > data.length)
            throw bad(`${name}'s data does not match its shape`);
        const raw = data.subarray(start, end);
        const values = new Float32Array(count);
        for (let k = 0; k < count; k++)
            values[k] = info.dtype === "F32" ? raw.readFloatLE(4 * k)
                : info.dtype === "F16" ? f16BitsToF32(raw.readUInt16LE(2 * k)) : bf16BitsToF32(raw.readUInt16LE(2 * k));
        out.push({ name, shape: info.shape!, values });
    }
    return out;
}

/** The safetensors layout: an 8-byte little-endian header length, a JSON header padded to 8 bytes, the data. */
function safetensors(entries: SafetensorsEntry[]): Uint8Array {
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let offset = 0;
    for (const entry of entries) {
        header[entry.name] = { dtype: entry.dtype, shape: entry.shape, data_offsets: [offset, offset + entry.data.length] };
        offset += entry.data.length;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - (json.length % 8)) % 8);
    const out = new Uint8Array(8 + json.length + offset);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(new TextEncoder().encode(json), 8);
    let at = 8 + json.length;
    for (const entry of entries) {
        out.set(entry.data, at);
        at += entry.data.length;
    }
    return out;
}
