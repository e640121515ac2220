import fs from "node:fs";
import path from "node:path";
import { readGgufInfo, readTensorData, readTensorValues, ggufArchitecture, metadataValue, type GgufInfo } from "../gguf/reader.js";
import { GgmlType } from "../gguf/types.js";
import { targetModules, type TargetModule } from "../train/options.js";
import { InputError } from "../util/errors.js";
import { writeFileAtomicSync } from "../util/fs.js";

/**
 * A GGUF LoRA adapter as a PEFT adapter folder (adapter_config.json, adapter_model.safetensors):
 * what vLLM (`--lora-modules name=folder`) and transformers + PEFT load. The tensors are the
 * same numbers; only names, and for llama the row order of q and k, differ.
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
    dir: string;
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
    if (ggufArchitecture(baseInfo) !== arch)
        throw new InputError(`${adapter}: a ${arch} adapter, but the base ${base} is ${ggufArchitecture(baseInfo) ?? "of no known architecture"}`);
    const heads = headCounts(baseInfo, arch);

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
            data = unpermuteRows(data, rows, data.length / rows, target === "attn_q" ? heads.q : heads.kv);
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
    return { dir, rank, targetModules: targets };
}

function headCounts(info: GgufInfo, arch: string): { q: number; kv: number } {
    const q = Number(metadataValue(info, `${arch}.attention.head_count`));
    const kv = Number(metadataValue(info, `${arch}.attention.head_count_kv`) ?? q);
    if (!(q > 0) || !(kv > 0))
        throw new InputError(`${info.path}: no ${arch}.attention.head_count`);
    return { q, kv };
}

/**
 * Puts the rows of a q or k projection back in Hugging Face's order: llama.cpp's converter
 * stores each head's row h*D + i*D/2 + j (i = 0, 1 the rotary halves) at h*D + 2j + i.
 */
function unpermuteRows(data: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
    const perHead = rows / heads;
    if (!Number.isInteger(perHead) || perHead % 2 !== 0)
        throw new InputError(`cannot reorder ${rows} rows into ${heads} heads of rotary pairs`);
    const out = new Uint8Array(data.length);
    for (let h = 0; h < heads; h++) {
        for (let i = 0; i < 2; i++) {
            for (let j = 0; j < perHead / 2; j++) {
                const from = h * perHead + 2 * j + i;
                const to = h * perHead + i * (perHead / 2) + j;
                out.set(data.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
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
