import fs from "node:fs";
import { InputError } from "../util/errors.js";
import { readGgufInfoSync, metadataValue, ggufArchitecture, type GgufInfo } from "../gguf/reader.js";
import type { GgufScalar } from "../gguf/writer.js";

/**
 * The one check of a GGUF file before llama.cpp (or the trainer) sees it. llama.cpp aborts
 * the whole process (GGML_ASSERT) on some files instead of returning an error: zero or
 * huge layer counts, zero heads, head counts that do not divide, a NaN norm epsilon, a
 * token list shorter than the vocabulary. The header is read by src/gguf/reader.ts, whose
 * counts are bounded by the file size, so a header claiming 2^63 tensors fails at once.
 * Throws an InputError naming the file and what is wrong; returns the header.
 */
export async function checkGgufFile(filePath: string, what = "model"): Promise<GgufInfo> {
    return checkGgufFileSync(filePath, what);
}

export function checkGgufFileSync(filePath: string, what = "model"): GgufInfo {
    let stat: fs.Stats;
    try {
        stat = fs.statSync(filePath);
    } catch {
        throw new InputError(`${what} file not found: ${filePath}`);
    }
    if (!stat.isFile())
        throw new InputError(`${what} path is not a regular file: ${filePath}`);
    const info = readHeader(filePath, what);
    const fail = (problem: string): never => {
        throw new InputError(`${what} file ${filePath}: ${problem}`);
    };
    if (metadataValue(info, "general.type") === "adapter")
        checkAdapterHeader(info, fail);
    else if (what === "adapter")
        throw new InputError(`not a LoRA adapter GGUF (general.type is ${JSON.stringify(metadataValue(info, "general.type") ?? null)}): ${filePath}`);
    else
        checkModelHyperparameters(info, fail);
    return info;
}

/** The header through the one reader, its complaints phrased as "<what> file ...: <path>". */
function readHeader(filePath: string, what: string): GgufInfo {
    try {
        return readGgufInfoSync(filePath);
    } catch (error) {
        if (!(error instanceof InputError))
            throw error;
        const detail = error.message.startsWith(`${filePath}: `) ? error.message.slice(filePath.length + 2) : error.message;
        if (/^not a GGUF file/.test(detail))
            throw new InputError(`${what} file is not a GGUF file (${detail.replace(/^not a GGUF file:?\s*/, "")}): ${filePath}`);
        if (/cannot fit/.test(detail))
            throw new InputError(`${what} file has a corrupt GGUF header (${detail}): ${filePath}`);
        throw new InputError(`${what} file is not a valid GGUF file (${detail}): ${filePath}`);
    }
}

/** llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS (src/llama-hparams.h): more is an assertion, not an error. */
const MAX_LAYERS = 512;
const MAX_EXPERTS = 1024;

/** llama.cpp's LLAMA_ROPE_SCALING_TYPES (src/llama-model.cpp): another name is an assertion. */
const ROPE_SCALING_TYPES = ["none", "linear", "yarn", "longrope"];

function checkModelHyperparameters(info: GgufInfo, fail: (problem: string) => never): void {
    const arch = ggufArchitecture(info);
    if (arch == null)
        fail("general.architecture is missing");
    if (info.tensors.length === 0)
        fail("it has no tensors");
    const key = (name: string) => `${arch}.${name}`;
    const integer = (name: string, required: boolean): number | null => {
        const value = metadataValue(info, key(name));
        if (value == null) {
            if (required)
                fail(`${key(name)} is missing`);
            return null;
        }
        if (Array.isArray(value) || !isInteger(value as GgufScalar))
            fail(`${key(name)} must be a whole number, got ${show(value)}`);
        return Number(value);
    };
    const layers = integer("block_count", true)!;
    if (layers < 1 || layers > MAX_LAYERS)
        fail(`${key("block_count")} is ${layers}; it must be between 1 and ${MAX_LAYERS}`);
    const embedding = integer("embedding_length", true)!;
    if (embedding < 1)
        fail(`${key("embedding_length")} is ${embedding}`);
    const context = integer("context_length", false);
    if (context != null && context < 1)
        fail(`${key("context_length")} is ${context}`);

    // Head counts may be one number or one per layer.
    const perLayer = (name: string): number[] | null => {
        const value = metadataValue(info, key(name));
        if (value == null)
            return null;
        const values = Array.isArray(value) ? value : [value];
        if (Array.isArray(value) && value.length !== layers)
            fail(`${key(name)} has ${value.length} entries for ${layers} layers`);
        return values.map((v) => {
            if (!isInteger(v))
                fail(`${key(name)} must hold whole numbers, got ${show(v)}`);
            return Number(v);
        });
    };
    const heads = perLayer("attention.head_count");
    if (heads == null)
        fail(`${key("attention.head_count")} is missing`);
    const kvHeads = perLayer("attention.head_count_kv") ?? heads!;
    heads!.forEach((h, layer) => {
        const kv = kvHeads[Math.min(layer, kvHeads.length - 1)]!;
        if (h < 1)
            fail(`${key("attention.head_count")} is ${h} (layer ${layer})`);
        if (kv < 1)
            fail(`${key("attention.head_count_kv")} is ${kv} (layer ${layer})`);
        if (h % kv !== 0)
            fail(`${key("attention.head_count")} ${h} is not a multiple of ${key("attention.head_count_kv")} ${kv} (layer ${layer})`);
    });
    if (metadataValue(info, key("attention.key_length")) == null && embedding % heads![0]! !== 0)
        fail(`${key("embedding_length")} ${embedding} is not a multiple of ${key("attention.head_count")} ${heads![0]}`);
    for (const name of ["attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon"]) {
        const value = metadataValue(info, key(name));
        if (value != null && (typeof value !== "number" || !Number.isFinite(value) || value < 0))
            fail(`${key(name)} must be a finite number >= 0, got ${show(value)}`);
    }
    for (const name of ["rope.freq_base", "rope.scaling.factor"]) {
        const value = metadataValue(info, key(name));
        if (value != null && (typeof value !== "number" || !Number.isFinite(value)))
            fail(`${key(name)} must be a finite number, got ${show(value)}`);
    }
    const ropeScaling = metadataValue(info, key("rope.scaling.type"));
    if (ropeScaling != null && !ROPE_SCALING_TYPES.includes(ropeScaling as string))
        fail(`${key("rope.scaling.type")} must be one of ${ROPE_SCALING_TYPES.join(", ")}, got ${show(ropeScaling)}`);
    const nextn = integer("nextn_predict_layers", false);
    if (nextn != null && nextn > layers)
        fail(`${key("nextn_predict_layers")} ${nextn} is more than the ${layers} layers`);
    checkExperts(arch!, integer, perLayer, fail);

    if (arch === "llama" || arch === "qwen2" || arch === "qwen3")
        checkDecoderTensors(info, { layers, embedding, heads: heads!, kvHeads, ff: integer("feed_forward_length", true)!, key }, fail);

    // The vocabulary: the token list must cover the embedding rows and every special id.
    const tokens = metadataValue(info, "tokenizer.ggml.tokens");
    if (tokens == null)
        fail("tokenizer.ggml.tokens is missing");
    if (!Array.isArray(tokens) || tokens.length === 0)
        fail("tokenizer.ggml.tokens must be a non-empty list of strings");
    const nTokens = (tokens as unknown[]).length;
    for (const name of ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
        const value = metadataValue(info, name);
        if (value != null && (!Array.isArray(value) || value.length !== nTokens))
            fail(`${name} has ${Array.isArray(value) ? value.length : "no"} entries for ${nTokens} tokens`);
    }
    const vocab = integer("vocab_size", false) ?? info.tensors.find((t) => t.name === "token_embd.weight")?.dims[1];
    if (vocab != null && nTokens < vocab)
        fail(`the token list has ${nTokens} tokens, fewer than the vocabulary's ${vocab}`);
    for (const [name, value] of Object.entries(info.metadata)) {
        if (/^tokenizer\.ggml\.\w+_token_id$/.test(name) && isInteger(value.value as GgufScalar)) {
            const id = Number(value.value);
            if (id >= nTokens && id !== 0xffffffff && id !== -1)
                fail(`${name} ${id} is outside the ${nTokens} tokens`);
        }
    }
}

/**
 * The mixture-of-experts counts, as llama.cpp asserts them when it loads the hyperparameters:
 * at most MAX_EXPERTS experts, 1..expert_count of them used per token (per layer where it is a
 * list), fewer groups than experts, and no used experts or groups without experts.
 */
function checkExperts(
    arch: string,
    integer: (name: string, required: boolean) => number | null,
    perLayer: (name: string) => number[] | null,
    fail: (problem: string) => never
): void {
    const key = (name: string) => `${arch}.${name}`;
    let experts = integer("expert_count", false) ?? 0;
    let used = Math.max(0, ...(perLayer("expert_used_count") ?? []));
    // llama.cpp reads Hunyuan's dense models' expert count of 1 as none
    if ((arch === "hunyuan-dense" || arch === "hunyuan_vl") && experts <= 1)
        experts = used = 0;
    const groups = integer("expert_group_count", false) ?? 0;
    const groupsUsed = integer("expert_group_used_count", false) ?? 0;
    if (experts > MAX_EXPERTS)
        fail(`${key("expert_count")} is ${experts}; it must be at most ${MAX_EXPERTS}`);
    if (experts === 0) {
        if (used > 0 || groups > 0)
            fail(`${key(used > 0 ? "expert_used_count" : "expert_group_count")} is ${used > 0 ? used : groups} without ${key("expert_count")}`);
        return;
    }
    if (used < 1 || used > experts)
        fail(`${key("expert_used_count")} is ${used}; it must be between 1 and ${key("expert_count")} ${experts}`);
    if (groups >= experts)
        fail(`${key("expert_group_count")} ${groups} is not below ${key("expert_count")} ${experts}`);
    if (groups > 1 && (experts % groups !== 0 || groupsUsed < 1 || groupsUsed >= groups))
        fail(`${key("expert_group_count")} ${groups} must divide ${key("expert_count")} ${experts}, with ${key("expert_group_used_count")} (${groupsUsed}) between 1 and ${groups - 1}`);
}

/**
 * The tensors of a llama-style decoder (llama, qwen2, qwen3) and their shapes: llama.cpp refuses a
 * missing or misshapen tensor only after printing its own log lines, so the check names it first.
 */
function checkDecoderTensors(
    info: GgufInfo,
    shape: { layers: number; embedding: number; heads: number[]; kvHeads: number[]; ff: number; key: (name: string) => string },
    fail: (problem: string) => never
): void {
    const tensors = new Map(info.tensors.map((t) => [t.name, t.dims]));
    const vocab = tensors.get("token_embd.weight")?.[1];
    const expect = (name: string, dims: number[], required = true) => {
        const actual = tensors.get(name);
        if (actual == null) {
            if (required)
                fail(`tensor ${name} is missing`);
            return;
        }
        if (actual.length !== dims.length || actual.some((d, i) => d !== dims[i]))
            fail(`tensor ${name} has shape [${actual.join(", ")}], expected [${dims.join(", ")}]`);
    };
    const n = shape.embedding;
    if (vocab == null)
        fail("tensor token_embd.weight is missing");
    expect("token_embd.weight", [n, vocab!]);
    expect("output_norm.weight", [n]);
    expect("output.weight", [n, vocab!], false);
    const moe = Number(metadataValue(info, shape.key("expert_count")) ?? 0) > 0;
    const keyLength = metadataValue(info, shape.key("attention.key_length"));
    const valueLength = metadataValue(info, shape.key("attention.value_length"));
    for (let layer = 0; layer < shape.layers; layer++) {
        const heads = shape.heads[Math.min(layer, shape.heads.length - 1)]!;
        const kvHeads = shape.kvHeads[Math.min(layer, shape.kvHeads.length - 1)]!;
        const headK = keyLength != null ? Number(keyLength) : n / heads;
        const headV = valueLength != null ? Number(valueLength) : n / heads;
        const blk = `blk.${layer}`;
        expect(`${blk}.attn_norm.weight`, [n]);
        expect(`${blk}.attn_q.weight`, [n, heads * headK]);
        expect(`${blk}.attn_k.weight`, [n, kvHeads * headK]);
        expect(`${blk}.attn_v.weight`, [n, kvHeads * headV]);
        expect(`${blk}.attn_output.weight`, [heads * headV, n]);
        expect(`${blk}.ffn_norm.weight`, [n]);
        if (moe)
            continue; // mixture-of-experts feed-forward tensors have other names and shapes
        expect(`${blk}.ffn_gate.weight`, [n, shape.ff]);
        expect(`${blk}.ffn_up.weight`, [n, shape.ff]);
        expect(`${blk}.ffn_down.weight`, [shape.ff, n]);
    }
}

function checkAdapterHeader(info: GgufInfo, fail: (problem: string) => never): void {
    if (metadataValue(info, "adapter.type") !== "lora")
        fail(`adapter.type must be "lora", got ${show(metadataValue(info, "adapter.type"))}`);
    const alpha = metadataValue(info, "adapter.lora.alpha");
    if (typeof alpha !== "number" || !Number.isFinite(alpha))
        fail(`adapter.lora.alpha must be a finite number, got ${show(alpha)}`);
    if (info.tensors.length === 0)
        fail("the adapter has no tensors");
    const shapes = new Map(info.tensors.map((t) => [t.name, t.dims]));
    let rank: number | null = null;
    for (const tensor of info.tensors) {
        const isA = tensor.name.endsWith(".lora_a");
        if (!isA && !tensor.name.endsWith(".lora_b"))
            fail(`tensor ${tensor.name} is neither .lora_a nor .lora_b`);
        if (tensor.dims.length !== 2)
            fail(`tensor ${tensor.name} has ${tensor.dims.length} dimensions, not 2`);
        const target = tensor.name.slice(0, -".lora_a".length);
        const partner = shapes.get(`${target}${isA ? ".lora_b" : ".lora_a"}`);
        if (partner == null)
            fail(`tensor ${tensor.name} has no ${isA ? "lora_b" : "lora_a"} partner`);
        const r = isA ? tensor.dims[1]! : tensor.dims[0]!;
        if (r < 1 || (rank != null && r !== rank))
            fail(`tensor ${tensor.name} has rank ${r}${rank != null ? `, the others ${rank}` : ""}`);
        rank = r;
    }
}

/**
 * Checks that an adapter fits a base model: same architecture, and every lora_a/lora_b pair
 * adapts a base tensor of matching shape. llama.cpp aborts on a mismatch instead.
 */
export function checkAdapterFitsBase(adapterPath: string, basePath: string): void {
    const adapter = checkGgufFileSync(adapterPath, "adapter");
    const base = readGgufInfoSync(basePath);
    const fail = (problem: string): never => {
        throw new InputError(`adapter file ${adapterPath}: ${problem} (base ${basePath})`);
    };
    const adapterArch = ggufArchitecture(adapter);
    const baseArch = ggufArchitecture(base);
    if (adapterArch !== baseArch)
        fail(`made for architecture ${adapterArch ?? "(none)"}, the base is ${baseArch ?? "(none)"}`);
    const baseShapes = new Map(base.tensors.map((t) => [t.name, t.dims]));
    for (const tensor of adapter.tensors) {
        const isA = tensor.name.endsWith(".lora_a");
        const target = tensor.name.slice(0, -".lora_a".length);
        const dims = baseShapes.get(target);
        if (dims == null)
            fail(`tensor ${tensor.name} adapts ${target}, which the base model does not have`);
        if ((isA && tensor.dims[0] !== dims![0]) || (!isA && tensor.dims[1] !== dims![1]))
            fail(`tensor ${tensor.name} [${tensor.dims.join(", ")}] does not fit ${target} [${dims!.join(", ")}]`);
    }
}

/** What an adapter GGUF holds, for `autoact model info`: null for a file that is not one. */
export function describeAdapter(info: GgufInfo): string | null {
    if (metadataValue(info, "general.type") !== "adapter")
        return null;
    const targets = new Set<string>();
    let rank: number | null = null;
    for (const tensor of info.tensors) {
        const match = /^blk\.\d+\.(.+)\.weight\.lora_([ab])$/.exec(tensor.name);
        if (match != null)
            targets.add(match[1]!);
        if (tensor.name.endsWith(".lora_a"))
            rank = tensor.dims[1] ?? null;
    }
    let base = String(metadataValue(info, "general.base_model.0.name") ?? "(not recorded)");
    const config = metadataValue(info, "autoact.train_config");
    if (typeof config === "string") {
        try {
            base = String((JSON.parse(config) as { base?: unknown }).base ?? base);
        } catch {
            // an unreadable config only loses the base's name
        }
    }
    return [
        `adapter: ${String(metadataValue(info, "adapter.type") ?? "?")} for ${ggufArchitecture(info) ?? "(no architecture)"}`,
        `agent: ${String(metadataValue(info, "autoact.agent") ?? "(not recorded)")}`,
        `rank: ${rank ?? "?"}, alpha: ${show(metadataValue(info, "adapter.lora.alpha"))}`,
        `targets: ${[...targets].join(", ") || "(none)"} (${info.tensors.length / 2} matrices)`,
        `base: ${base}`
    ].join("\n");
}

function isInteger(value: GgufScalar): boolean {
    return typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value));
}

function show(value: unknown): string {
    if (Array.isArray(value))
        return `a list of ${value.length}`;
    return typeof value === "string" ? JSON.stringify(value) : String(value);
}
