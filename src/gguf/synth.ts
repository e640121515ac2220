import { InputError } from "../util/errors.js";
import { positiveInteger } from "../util/checks.js";
import { syntheticPreset } from "./presets.js";
import { Xorshift128 } from "./random.js";
import { GGML_TYPE_TRAITS, GgmlType, GgufValueType, LlamaFileType } from "./types.js";
import { buildByteLevelVocab } from "./vocab.js";
import { gguf, writeGguf, type GgufMetadataInput, type GgufTensorSpec } from "./writer.js";

export const SYNTH_ARCHS = ["llama", "qwen2", "qwen3"] as const;
export type SynthArch = (typeof SYNTH_ARCHS)[number];
export const SYNTH_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k"] as const;
export type SynthType = (typeof SYNTH_TYPES)[number];
export const CHAT_TEMPLATES = ["chatml", "none"] as const;
export type SynthChatTemplate = (typeof CHAT_TEMPLATES)[number];

/** What sets each architecture apart from the llama-style decoder they share, as their real models have it. */
const archTraits: Record<SynthArch, {
    ropeBase: number; normEps: number; pretokenizer: string; chatTemplate: SynthChatTemplate;
    /** q, k and v projections with biases */
    qkvBias: boolean;
    /** an RMS norm of each head's q and k before rotary embeddings */
    qkNorm: boolean;
}> = {
    llama: { ropeBase: 10_000, normEps: 1e-5, pretokenizer: "default", chatTemplate: "none", qkvBias: false, qkNorm: false },
    qwen2: { ropeBase: 1_000_000, normEps: 1e-6, pretokenizer: "qwen2", chatTemplate: "chatml", qkvBias: true, qkNorm: false },
    qwen3: { ropeBase: 1_000_000, normEps: 1e-6, pretokenizer: "qwen2", chatTemplate: "chatml", qkvBias: false, qkNorm: true }
};

/** The ChatML template (as Qwen2 instruct models carry it), for models that should have one. */
export const CHATML_TEMPLATE =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const EOS_TOKEN = "<|endoftext|>";
export const IM_START_TOKEN = "<|im_start|>";
export const IM_END_TOKEN = "<|im_end|>";

export interface SyntheticModelOptions {
    arch: SynthArch;
    /** Hidden size. */
    nEmbd: number;
    /** Transformer blocks. */
    layers: number;
    /** Attention heads; must divide nEmbd. */
    heads: number;
    /** Key/value heads; must divide heads. Defaults to heads. */
    kvHeads?: number;
    /** Feed-forward hidden size. */
    ff: number;
    /** Training context length written to the metadata. Defaults to 2048. */
    ctx?: number;
    /** Element type of token_embd, output and the 2-D block weights; norms and biases stay F32. Defaults to f32. */
    type?: SynthType;
    /** Seed of the random weights. Defaults to 1. */
    seed?: number;
    /** Output file. */
    out: string;
    /** Vocabulary size (byte-level BPE: 256 bytes + merges + specials). Defaults to 512. */
    vocab?: number;
    /** `chatml` adds a ChatML tokenizer.chat_template and its special tokens. Defaults to chatml for qwen2 and qwen3, none for llama. */
    chatTemplate?: SynthChatTemplate;
    /** Leave out output.weight so llama.cpp reuses token_embd (as Qwen2.5-0.5B does). Defaults to false. */
    tiedEmbeddings?: boolean;
    /** `general.name`. Defaults to a name built from the shape. */
    name?: string;
}

/**
 * The options, or a preset name from models/presets.json whose shape fills every option
 * not given (explicit values win).
 */
export type SyntheticModelRequest =
    | (SyntheticModelOptions & { preset?: string })
    | (Partial<SyntheticModelOptions> & { preset: string; out: string });

export interface SyntheticModelResult {
    path: string;
    /** Parameter count (all tensor elements). */
    params: number;
    /** File size. */
    bytes: number;
}

const GGML_TYPE_OF: Record<SynthType, GgmlType> = {
    f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0, q4_k: GgmlType.Q4_K
};
const FILE_TYPE_OF: Record<SynthType, LlamaFileType> = {
    f32: LlamaFileType.ALL_F32,
    f16: LlamaFileType.MOSTLY_F16,
    bf16: LlamaFileType.MOSTLY_BF16,
    q8_0: LlamaFileType.MOSTLY_Q8_0,
    q4_0: LlamaFileType.MOSTLY_Q4_0,
    q4_k: LlamaFileType.MOSTLY_Q4_K_S
};

// Values generated per chunk: bounds memory to a few MiB whatever the model size.
const CHUNK_VALUES = 1 << 20;

/**
 * Writes a random-weight llama, qwen2 or qwen3 GGUF that llama.cpp loads, with a byte-level `gpt2`
 * tokenizer. Weights are deterministic from the seed and scaled (std 1/sqrt(fan_in), residual
 * projections further by 1/sqrt(2*layers), embeddings 0.02) so activations stay sane. Tensors are generated
 * and written one chunk at a time.
 */
export async function writeSyntheticModel(options: SyntheticModelRequest): Promise<SyntheticModelResult> {
    const o = resolveOptions(options);
    const { arch, nEmbd, layers, heads, kvHeads, ff, ctx, seed } = o;
    const headDim = nEmbd / heads;
    const nEmbdKv = headDim * kvHeads;
    const weightType = GGML_TYPE_OF[o.type];
    const traits = archTraits[arch];

    const specials = o.chatTemplate === "chatml" ? [EOS_TOKEN, IM_START_TOKEN, IM_END_TOKEN] : [EOS_TOKEN];
    const vocab = buildByteLevelVocab(o.vocab, specials);
    const eos = vocab.specialIds[EOS_TOKEN]!;

    const metadata: Record<string, GgufMetadataInput> = {
        "general.architecture": arch,
        "general.name": o.name,
        "general.file_type": gguf.u32(FILE_TYPE_OF[o.type]),
        "general.quantization_version": gguf.u32(2),
        [`${arch}.context_length`]: gguf.u32(ctx),
        [`${arch}.embedding_length`]: gguf.u32(nEmbd),
        [`${arch}.block_count`]: gguf.u32(layers),
        [`${arch}.feed_forward_length`]: gguf.u32(ff),
        [`${arch}.attention.head_count`]: gguf.u32(heads),
        [`${arch}.attention.head_count_kv`]: gguf.u32(kvHeads),
        [`${arch}.rope.dimension_count`]: gguf.u32(headDim),
        [`${arch}.rope.freq_base`]: gguf.f32(traits.ropeBase),
        [`${arch}.attention.layer_norm_rms_epsilon`]: gguf.f32(traits.normEps),
        [`${arch}.vocab_size`]: gguf.u32(o.vocab),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": traits.pretokenizer,
        "tokenizer.ggml.tokens": vocab.tokens,
        "tokenizer.ggml.token_type": gguf.array(GgufValueType.INT32, vocab.tokenTypes),
        "tokenizer.ggml.merges": vocab.merges,
        "tokenizer.ggml.bos_token_id": gguf.u32(eos),
        "tokenizer.ggml.eos_token_id": gguf.u32(eos),
        "tokenizer.ggml.padding_token_id": gguf.u32(eos),
        "tokenizer.ggml.add_bos_token": false
    };
    if (o.chatTemplate === "chatml")
        metadata["tokenizer.chat_template"] = CHATML_TEMPLATE;

    const tensors: GgufTensorSpec[] = [];
    const residualScale = 1 / Math.sqrt(2 * layers);
    const add = (name: string, dims: number[], type: GgmlType, init: Init) =>
        tensors.push({ name, dims, type, data: () => generate(seed, name, dims, init) });
    const matrix = (name: string, nIn: number, nOut: number, extraScale = 1) =>
        add(name, [nIn, nOut], weightType, { std: extraScale / Math.sqrt(nIn) });

    // Small embeddings (as trained models have) so the blocks' outputs dominate the residual
    // stream; tied ones a little larger, as they also make the logits.
    add("token_embd.weight", [nEmbd, o.vocab], weightType, { std: o.tiedEmbeddings ? 2 / Math.sqrt(nEmbd) : 0.02 });
    for (let i = 0; i < layers; i++) {
        const p = `blk.${i}.`;
        add(`${p}attn_norm.weight`, [nEmbd], GgmlType.F32, { constant: 1 });
        matrix(`${p}attn_q.weight`, nEmbd, nEmbd);
        matrix(`${p}attn_k.weight`, nEmbd, nEmbdKv);
        matrix(`${p}attn_v.weight`, nEmbd, nEmbdKv);
        if (traits.qkvBias) {
            add(`${p}attn_q.bias`, [nEmbd], GgmlType.F32, { std: 0.02 });
            add(`${p}attn_k.bias`, [nEmbdKv], GgmlType.F32, { std: 0.02 });
            add(`${p}attn_v.bias`, [nEmbdKv], GgmlType.F32, { std: 0.02 });
        }
        if (traits.qkNorm) {
            add(`${p}attn_q_norm.weight`, [headDim], GgmlType.F32, { constant: 1 });
            add(`${p}attn_k_norm.weight`, [headDim], GgmlType.F32, { constant: 1 });
        }
        matrix(`${p}attn_output.weight`, nEmbd, nEmbd, residualScale);
        add(`${p}ffn_norm.weight`, [nEmbd], GgmlType.F32, { constant: 1 });
        matrix(`${p}ffn_gate.weight`, nEmbd, ff);
        matrix(`${p}ffn_up.weight`, nEmbd, ff);
        matrix(`${p}ffn_down.weight`, ff, nEmbd, residualScale);
    }
    add("output_norm.weight", [nEmbd], GgmlType.F32, { constant: 1 });
    if (!o.tiedEmbeddings)
        matrix("output.weight", nEmbd, o.vocab, 2);

    const result = await writeGguf({ path: o.out, metadata, tensors });
    return { path: result.path, params: result.elements, bytes: result.bytes };
}

type Init = { std: number } | { constant: number };

function* generate(seed: number, name: string, dims: number[], init: Init): Generator<Float32Array> {
    const rowLength = dims[0]!;
    const total = dims.reduce((a, b) => a * b, 1);
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLength));
    const rng = new Xorshift128(seed, name);
    const buffer = new Float32Array(Math.min(total, rowsPerChunk * rowLength));
    for (let done = 0; done < total; done += buffer.length) {
        const chunk = total - done < buffer.length ? buffer.subarray(0, total - done) : buffer;
        if ("constant" in init)
            chunk.fill(init.constant);
        else
            rng.fillUniform(chunk, init.std);
        yield chunk;
    }
}

type ResolvedOptions = Required<Omit<SyntheticModelOptions, "name">> & { name: string };

/** Checks shapes and fills defaults; bad values throw a one-line InputError naming the option. */
export function resolveOptions(request: SyntheticModelRequest): ResolvedOptions {
    let options = request as Partial<SyntheticModelOptions> & { preset?: string };
    if (request.preset != null) {
        const { description: _, ...shape } = syntheticPreset(request.preset);
        const given = Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined));
        options = { ...shape, ...given };
    }
    const arch = options.arch as SynthArch;
    if (arch == null)
        throw new InputError(`arch is required (${SYNTH_ARCHS.join(", ")}), or name a preset`);
    if (!(SYNTH_ARCHS as readonly string[]).includes(arch))
        throw new InputError(`unknown architecture "${arch}": expected one of ${SYNTH_ARCHS.join(", ")}`);
    const type = options.type ?? "f32";
    if (!(SYNTH_TYPES as readonly string[]).includes(type))
        throw new InputError(`unknown model type "${type}": expected one of ${SYNTH_TYPES.join(", ")}`);
    const chatTemplate = options.chatTemplate ?? archTraits[arch].chatTemplate;
    if (!(CHAT_TEMPLATES as readonly string[]).includes(chatTemplate))
        throw new InputError(`unknown chat template "${chatTemplate}": expected one of ${CHAT_TEMPLATES.join(", ")}`);
    const positive = (name: string, value: number | undefined): number => {
        if (value == null)
            throw new InputError(`${name} is required (or name a preset)`);
        return positiveInteger(value, name);
    };
    const nEmbd = positive("n-embd", options.nEmbd);
    const layers = positive("layers", options.layers);
    const heads = positive("heads", options.heads);
    const kvHeads = positive("kv-heads", options.kvHeads ?? heads);
    const ff = positive("ff", options.ff);
    const ctx = positive("ctx", options.ctx ?? 2048);
    const vocab = positive("vocab", options.vocab ?? 512);
    const seed = options.seed ?? 1;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
        throw new InputError(`seed must be an integer from 0 to 4294967295, got ${seed}`);
    if (nEmbd % heads !== 0)
        throw new InputError(`heads (${heads}) must divide n-embd (${nEmbd})`);
    if (heads % kvHeads !== 0)
        throw new InputError(`kv-heads (${kvHeads}) must divide heads (${heads})`);
    if ((nEmbd / heads) % 2 !== 0)
        throw new InputError(`head size n-embd/heads = ${nEmbd / heads} must be even (rotary embeddings rotate pairs)`);
    const blockSize = GGML_TYPE_TRAITS[GGML_TYPE_OF[type as SynthType]]!.blockSize;
    for (const [name, value] of [["n-embd", nEmbd], ["ff", ff]] as const)
        if (value % blockSize !== 0)
            throw new InputError(`${name} (${value}) must be a multiple of ${blockSize} for type ${type}: it is the row size of quantized weights`);
    const specials = chatTemplate === "chatml" ? 3 : 1;
    if (vocab < 256 + specials)
        throw new InputError(`vocab (${vocab}) must be at least ${256 + specials}: 256 byte tokens + ${specials} special`);
    // sizes a real GGUF never has would be minutes of writing before running out of memory or disk
    if (vocab > 2 ** 20)
        throw new InputError(`vocab (${vocab}) must be at most ${2 ** 20}`);
    const kvWidth = (nEmbd / heads) * kvHeads;
    const parameters = vocab * nEmbd * (options.tiedEmbeddings ? 1 : 2) + layers * (2 * nEmbd * nEmbd + 2 * nEmbd * kvWidth + 3 * nEmbd * ff);
    if (parameters > 2e10)
        throw new InputError(`the shape makes ${(parameters / 1e9).toFixed(0)}B parameters: synthetic models stop at 20B`);
    if (options.out == null || options.out === "")
        throw new InputError("out: an output file is required");
    const name = options.name ?? `synthetic-${arch}-${nEmbd}x${layers}-${type}`;
    return {
        arch, nEmbd, layers, heads, kvHeads, ff, ctx, vocab, seed, out: options.out, name,
        type: type as SynthType, chatTemplate: chatTemplate as SynthChatTemplate,
        tiedEmbeddings: options.tiedEmbeddings ?? false
    };
}

/** Parameter count of a synthetic model with these options (without writing it). */
export function syntheticParamCount(options: Omit<SyntheticModelOptions, "out"> | { preset: string }): number {
    const o = resolveOptions({ ...options, out: "-" } as SyntheticModelRequest);
    const nEmbdKv = (o.nEmbd / o.heads) * o.kvHeads;
    const perLayer = 2 * o.nEmbd + 2 * o.nEmbd * o.nEmbd + 2 * o.nEmbd * nEmbdKv + 3 * o.nEmbd * o.ff +
        (archTraits[o.arch].qkvBias ? o.nEmbd + 2 * nEmbdKv : 0) + (archTraits[o.arch].qkNorm ? 2 * (o.nEmbd / o.heads) : 0);
    return o.vocab * o.nEmbd * (o.tiedEmbeddings ? 1 : 2) + o.layers * perLayer + o.nEmbd;
}
