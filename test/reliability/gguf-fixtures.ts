import { readGgufInfoSync, readTensorData } from "../../src/gguf/reader.js";
import { gguf, writeGguf, type GgufMetadataValue, type GgufTensorSpec } from "../../src/gguf/writer.js";
import { GgmlType, GgufValueType } from "../../src/gguf/types.js";

export type MetadataEdit = (metadata: Record<string, GgufMetadataValue>) => void;

/**
 * Copies a real GGUF with edited metadata (and optionally edited tensor specs): the way to
 * make a file whose header is well-formed but whose hyperparameters llama.cpp asserts on.
 */
/** Tensor edits that go with some of the metadata edits above (by name). */
export const badModelTensorEdits: Record<string, (tensors: GgufTensorSpec[]) => void> = {
    "no-output-norm": (tensors) => { tensors.splice(tensors.findIndex((t) => t.name === "output_norm.weight"), 1); },
    "q-misshapen": (tensors) => {
        const i = tensors.findIndex((t) => t.name === "blk.0.attn_q.weight");
        tensors[i] = { ...tensors[i]!, dims: [32, 128] };
    }
};

export async function rewriteGguf(source: string, out: string, edit: MetadataEdit, editTensors?: (tensors: GgufTensorSpec[]) => void): Promise<string> {
    const info = readGgufInfoSync(source);
    const metadata = structuredClone(info.metadata);
    edit(metadata);
    const tensors: GgufTensorSpec[] = [];
    for (const tensor of info.tensors)
        tensors.push({ name: tensor.name, dims: tensor.dims, type: tensor.type, data: await readTensorData(info, tensor.name) });
    editTensors?.(tensors);
    await writeGguf({ path: out, metadata, tensors, alignment: info.alignment });
    return out;
}

/** The bad models llama.cpp asserts on (GGML_ASSERT, SIGABRT), each an edit of stories260K. */
export const badModelEdits: [name: string, edit: MetadataEdit, pattern: RegExp][] = [
    ["block-count-0", (m) => { m["llama.block_count"] = gguf.u32(0); }, /llama\.block_count is 0; it must be between 1 and 512/],
    ["block-count-huge", (m) => { m["llama.block_count"] = gguf.u32(4_000_000_000); }, /llama\.block_count is 4000000000/],
    ["head-count-0", (m) => { m["llama.attention.head_count"] = gguf.u32(0); }, /llama\.attention\.head_count is 0/],
    ["head-count-kv-0", (m) => { m["llama.attention.head_count_kv"] = gguf.u32(0); }, /llama\.attention\.head_count_kv is 0/],
    ["head-count-kv-3", (m) => { m["llama.attention.head_count_kv"] = gguf.u32(3); }, /head_count 8 is not a multiple of .*head_count_kv 3/],
    ["eps-nan", (m) => { m["llama.attention.layer_norm_rms_epsilon"] = gguf.f32(Number.NaN); }, /layer_norm_rms_epsilon must be a finite number >= 0, got NaN/],
    ["eps-inf", (m) => { m["llama.attention.layer_norm_rms_epsilon"] = gguf.f32(Number.POSITIVE_INFINITY); }, /layer_norm_rms_epsilon must be a finite number/],
    ["short-vocab", (m) => {
        for (const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
            const value = m[key]!;
            if (value.type === GgufValueType.ARRAY)
                m[key] = { ...value, value: value.value.slice(0, 100) };
        }
    }, /the token list has 100 tokens, fewer than the vocabulary's 512/],
    ["scores-short", (m) => {
        const value = m["tokenizer.ggml.scores"]!;
        if (value.type === GgufValueType.ARRAY)
            m["tokenizer.ggml.scores"] = { ...value, value: value.value.slice(0, 10) };
    }, /tokenizer\.ggml\.scores has 10 entries for 512 tokens/],
    ["bos-outside", (m) => { m["tokenizer.ggml.bos_token_id"] = gguf.u32(9999); }, /tokenizer\.ggml\.bos_token_id 9999 is outside the 512 tokens/],
    ["no-arch", (m) => { delete m["general.architecture"]; }, /general\.architecture is missing/],
    ["no-output-norm", () => undefined, /tensor output_norm\.weight is missing/],
    ["q-misshapen", () => undefined, /tensor blk\.0\.attn_q\.weight has shape \[32, 128\], expected \[64, 64\]/],
    ["embd-not-multiple", (m) => { m["llama.attention.head_count"] = gguf.u32(6); m["llama.attention.head_count_kv"] = gguf.u32(6); }, /embedding_length 64 is not a multiple of .*head_count 6/],
    ["rope-scaling-bogus", (m) => { m["llama.rope.scaling.type"] = gguf.str("bogus"); }, /llama\.rope\.scaling\.type must be one of none, linear, yarn, longrope, got "bogus"/],
    ["experts-used-over", (m) => { m["llama.expert_count"] = gguf.u32(4); m["llama.expert_used_count"] = gguf.u32(8); }, /llama\.expert_used_count is 8; it must be between 1 and llama\.expert_count 4/],
    ["experts-used-0", (m) => { m["llama.expert_count"] = gguf.u32(4); }, /llama\.expert_used_count is 0; it must be between 1 and llama\.expert_count 4/],
    ["experts-huge", (m) => { m["llama.expert_count"] = gguf.u32(2000); m["llama.expert_used_count"] = gguf.u32(2); }, /llama\.expert_count is 2000; it must be at most 1024/],
    ["experts-used-alone", (m) => { m["llama.expert_used_count"] = gguf.u32(2); }, /llama\.expert_used_count is 2 without llama\.expert_count/],
    ["expert-groups-3-of-4", (m) => {
        m["llama.expert_count"] = gguf.u32(4);
        m["llama.expert_used_count"] = gguf.u32(2);
        m["llama.expert_group_count"] = gguf.u32(3);
        m["llama.expert_group_used_count"] = gguf.u32(1);
    }, /llama\.expert_group_count 3 must divide llama\.expert_count 4/],
    ["nextn-over-layers", (m) => { m["llama.nextn_predict_layers"] = gguf.u32(9); }, /llama\.nextn_predict_layers 9 is more than the 5 layers/]
];

/** A LoRA adapter for stories260K's attn_q (n_embd 64) written by hand: rank 4, alpha 8. */
export async function writeAdapter(file: string, options: { rank?: number; inDim?: number; dropB?: boolean; rankB?: number } = {}): Promise<string> {
    const { rank = 4, inDim = 64, rankB = rank } = options;
    const tensors = [];
    for (const layer of [0, 1]) {
        tensors.push({ name: `blk.${layer}.attn_q.weight.lora_a`, dims: [inDim, rank], type: GgmlType.F32, data: new Float32Array(inDim * rank) });
        if (!options.dropB)
            tensors.push({ name: `blk.${layer}.attn_q.weight.lora_b`, dims: [rankB, 64], type: GgmlType.F32, data: new Float32Array(rankB * 64) });
    }
    await writeGguf({
        path: file,
        metadata: {
            "general.architecture": "llama", "general.type": "adapter", "adapter.type": "lora",
            "adapter.lora.alpha": gguf.f32(8), "autoact.agent": "plan"
        },
        tensors
    });
    return file;
}


/** A GGUF header claiming 2^63 tensors (the audit's memory blow-up), padded to 4 KiB. */
export function hugeTensorCountHeader(): Buffer {
    const header = Buffer.alloc(24);
    header.write("GGUF", 0, "latin1");
    header.writeUInt32LE(3, 4);
    header.writeBigUInt64LE(1n << 63n, 8);
    header.writeBigUInt64LE(0n, 16);
    return Buffer.concat([header, Buffer.alloc(4096)]);
}
