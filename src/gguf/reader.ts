import fs from "node:fs";
import { InputError } from "../util/errors.js";
import { dequantize } from "./quantize.js";
import {
    GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGML_TYPE_TRAITS, GgufValueType, elementCount, ggmlTypeName, llamaFileTypeName,
    tensorByteSize, type GgmlType
} from "./types.js";
import type { GgufMetadataValue, GgufScalar, GgufScalarType } from "./writer.js";

export interface GgufTensorInfo {
    name: string;
    /** ggml shape, ne0 (the row length) first. */
    dims: number[];
    type: GgmlType;
    /** Offset from the start of the data section. */
    offset: number;
    /** Offset from the start of the file. */
    fileOffset: number;
    /** Bytes of data. */
    bytes: number;
}

export interface GgufInfo {
    path: string;
    version: number;
    fileSize: number;
    /** Key -> typed value, in file order. 64-bit integers are bigints. */
    metadata: Record<string, GgufMetadataValue>;
    tensors: GgufTensorInfo[];
    alignment: number;
    /** File offset of the tensor data section. */
    dataOffset: number;
}

const READ_CHUNK = 1 << 20;

/**
 * Reads a GGUF header (metadata and tensor infos) without reading tensor data: memory is the
 * header plus a 1 MiB buffer, whatever the file size. A corrupt or truncated file throws an
 * InputError naming the file and what is wrong.
 */
export async function readGgufInfo(filePath: string): Promise<GgufInfo> {
    return readGgufInfoSync(filePath);
}

export function readGgufInfoSync(filePath: string): GgufInfo {
    let fd: number;
    try {
        fd = fs.openSync(filePath, "r");
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new InputError(code === "ENOENT" ? `GGUF file not found: ${filePath}` : `cannot open GGUF file ${filePath}: ${code ?? String(error)}`);
    }
    try {
        const stat = fs.fstatSync(fd);
        if (!stat.isFile())
            throw new InputError(`not a regular file: ${filePath}`);
        return parse(new FileCursor(fd, stat.size, filePath));
    } finally {
        fs.closeSync(fd);
    }
}

function parse(r: FileCursor): GgufInfo {
    const bad = (what: string, at = r.pos): never => {
        throw new InputError(`${r.filePath}: not a valid GGUF file: ${what} (at byte ${at})`);
    };
    if (r.size < 4)
        throw new InputError(`${r.filePath}: not a GGUF file: ${r.size} bytes, too short for the magic`);
    const magic = r.u32("magic");
    if (magic !== GGUF_MAGIC)
        throw new InputError(`${r.filePath}: not a GGUF file: bad magic 0x${magic.toString(16).padStart(8, "0")} (expected "GGUF")`);
    const version = r.u32("version");
    if (version !== 2 && version !== 3)
        throw new InputError(`${r.filePath}: unsupported GGUF version ${version} (this reader handles 2 and 3)`);
    const tensorCount = r.count("tensor count", 8);
    const kvCount = r.count("metadata count", 9);

    const metadata: Record<string, GgufMetadataValue> = {};
    for (let i = 0; i < kvCount; i++) {
        const keyAt = r.pos;
        const key = r.string("metadata key");
        const typeAt = r.pos;
        const type = r.u32(`type of ${key}`);
        if (type === GgufValueType.ARRAY) {
            const itemType = r.u32(`item type of ${key}`);
            if (itemType === GgufValueType.ARRAY)
                bad(`metadata ${key}: nested arrays are not supported`, typeAt);
            if (GgufValueType[itemType] == null)
                bad(`metadata ${key}: unknown array item type ${itemType}`, typeAt);
            const n = r.count(`length of ${key}`, 1);
            const items: GgufScalar[] = new Array(n);
            for (let j = 0; j < n; j++)
                items[j] = r.scalar(itemType as GgufScalarType, key);
            metadata[key] = { type: GgufValueType.ARRAY, itemType: itemType as GgufScalarType, value: items };
        } else {
            if (GgufValueType[type] == null)
                bad(`metadata ${key}: unknown value type ${type}`, typeAt);
            metadata[key] = { type: type as GgufScalarType, value: r.scalar(type as GgufScalarType, key) };
        }
        if (key === "")
            bad("empty metadata key", keyAt);
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const alignmentValue = metadata["general.alignment"];
    if (alignmentValue != null) {
        alignment = Number(alignmentValue.value);
        if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0)
            throw new InputError(`${r.filePath}: general.alignment ${String(alignmentValue.value)} is not a power of two`);
    }

    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
        const at = r.pos;
        const name = r.string("tensor name");
        const nDims = r.u32(`dimension count of ${name}`);
        if (nDims < 1 || nDims > 4)
            bad(`tensor ${name} has ${nDims} dimensions`, at);
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++)
            dims.push(Number(r.u64(`dimensions of ${name}`)));
        const type = r.u32(`type of ${name}`) as GgmlType;
        if (GGML_TYPE_TRAITS[type] == null)
            bad(`tensor ${name} has an unknown type ${type}`, at);
        const offset = Number(r.u64(`offset of ${name}`));
        let bytes: number;
        try {
            bytes = tensorByteSize(type, dims);
        } catch (error) {
            return bad(`tensor ${name}: ${(error as Error).message}`, at);
        }
        if (offset % alignment !== 0)
            bad(`tensor ${name} offset ${offset} is not aligned to ${alignment}`, at);
        tensors.push({ name, dims, type, offset, fileOffset: 0, bytes });
    }
    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    for (const tensor of tensors) {
        tensor.fileOffset = dataOffset + tensor.offset;
        const end = tensor.fileOffset + tensor.bytes;
        if (end > r.size)
            throw new InputError(`${r.filePath}: truncated at byte ${r.size}: tensor ${tensor.name} needs bytes up to ${end}`);
    }
    return { path: r.filePath, version, fileSize: r.size, metadata, tensors, alignment, dataOffset };
}

/** Sequential reads through a 1 MiB window of the file. */
class FileCursor {
    pos = 0;
    private buf = Buffer.alloc(READ_CHUNK);
    private bufStart = 0;
    private bufEnd = 0;

    constructor(private readonly fd: number, readonly size: number, readonly filePath: string) {}

    private take(n: number, what: string): Buffer {
        if (this.pos + n > this.size)
            throw new InputError(`${this.filePath}: truncated at byte ${this.size} while reading ${what} (needs bytes up to ${this.pos + n})`);
        if (this.pos < this.bufStart || this.pos + n > this.bufEnd) {
            if (n > this.buf.length)
                this.buf = Buffer.alloc(n);
            const read = fs.readSync(this.fd, this.buf, 0, Math.min(this.buf.length, this.size - this.pos), this.pos);
            this.bufStart = this.pos;
            this.bufEnd = this.pos + read;
        }
        const start = this.pos - this.bufStart;
        this.pos += n;
        return this.buf.subarray(start, start + n);
    }

    u32(what: string): number {
        return this.take(4, what).readUInt32LE(0);
    }

    u64(what: string): bigint {
        return this.take(8, what).readBigUInt64LE(0);
    }

    /** A u64 count, checked against what the rest of the file could hold. */
    count(what: string, minItemBytes: number): number {
        const at = this.pos;
        const n = this.u64(what);
        if (n * BigInt(minItemBytes) > BigInt(this.size - this.pos))
            throw new InputError(`${this.filePath}: truncated or corrupt: ${what} ${n} (at byte ${at}) cannot fit in the file's ${this.size} bytes`);
        return Number(n);
    }

    string(what: string): string {
        const n = this.count(`length of ${what}`, 1);
        return this.take(n, what).toString("utf8");
    }

    scalar(type: GgufScalarType, key: string): GgufScalar {
        const what = `value of ${key}`;
        switch (type) {
            case GgufValueType.UINT8: return this.take(1, what).readUInt8(0);
            case GgufValueType.INT8: return this.take(1, what).readInt8(0);
            case GgufValueType.UINT16: return this.take(2, what).readUInt16LE(0);
            case GgufValueType.INT16: return this.take(2, what).readInt16LE(0);
            case GgufValueType.UINT32: return this.take(4, what).readUInt32LE(0);
            case GgufValueType.INT32: return this.take(4, what).readInt32LE(0);
            case GgufValueType.FLOAT32: return this.take(4, what).readFloatLE(0);
            case GgufValueType.BOOL: return this.take(1, what).readUInt8(0) !== 0;
            case GgufValueType.STRING: return this.string(what);
            case GgufValueType.UINT64: return this.take(8, what).readBigUInt64LE(0);
            case GgufValueType.INT64: return this.take(8, what).readBigInt64LE(0);
            case GgufValueType.FLOAT64: return this.take(8, what).readDoubleLE(0);
        }
        throw new InputError(`${this.filePath}: not a valid GGUF file: ${key} has unknown type ${String(type)}`);
    }
}

/** The value of a metadata key (arrays as JS arrays), or undefined. */
export function metadataValue(info: GgufInfo, key: string): GgufScalar | readonly GgufScalar[] | undefined {
    return info.metadata[key]?.value;
}

export function ggufArchitecture(info: GgufInfo): string | undefined {
    const value = metadataValue(info, "general.architecture");
    return typeof value === "string" ? value : undefined;
}

/** Total tensor elements. */
export function ggufParameterCount(info: GgufInfo): number {
    return info.tensors.reduce((sum, t) => sum + elementCount(t.dims), 0);
}

/** `general.file_type` as number and llama.cpp name (e.g. 7, "MOSTLY_Q8_0"), or undefined. */
export function ggufFileType(info: GgufInfo): { id: number; name: string } | undefined {
    const value = metadataValue(info, "general.file_type");
    if (typeof value !== "number" && typeof value !== "bigint")
        return undefined;
    return { id: Number(value), name: llamaFileTypeName(Number(value)) };
}

export function ggufContextLength(info: GgufInfo): number | undefined {
    const arch = ggufArchitecture(info);
    const value = arch == null ? undefined : metadataValue(info, `${arch}.context_length`);
    return typeof value === "number" || typeof value === "bigint" ? Number(value) : undefined;
}

export function ggufChatTemplate(info: GgufInfo): string | undefined {
    const value = metadataValue(info, "tokenizer.chat_template");
    return typeof value === "string" ? value : undefined;
}

export function ggufHasChatTemplate(info: GgufInfo): boolean {
    return ggufChatTemplate(info) != null;
}

function findTensor(info: GgufInfo, name: string): GgufTensorInfo {
    const tensor = info.tensors.find((t) => t.name === name);
    if (tensor == null)
        throw new InputError(`${info.path}: no tensor named ${name}`);
    return tensor;
}

/** The raw bytes of one tensor (read from disk on demand). */
export async function readTensorData(info: GgufInfo, name: string): Promise<Uint8Array> {
    const tensor = findTensor(info, name);
    const handle = await fs.promises.open(info.path, "r");
    try {
        const out = new Uint8Array(tensor.bytes);
        let done = 0;
        while (done < out.length) {
            const { bytesRead } = await handle.read(out, done, out.length - done, tensor.fileOffset + done);
            if (bytesRead === 0)
                throw new InputError(`${info.path}: truncated at byte ${tensor.fileOffset + done} reading tensor ${name}`);
            done += bytesRead;
        }
        return out;
    } finally {
        await handle.close();
    }
}

/** One tensor's values as float32 (dequantized; F32, F16, Q8_0, Q4_0, Q4_K). */
export async function readTensorValues(info: GgufInfo, name: string): Promise<Float32Array> {
    const tensor = findTensor(info, name);
    return dequantize(tensor.type, await readTensorData(info, name), elementCount(tensor.dims));
}

/** A short human-readable summary (used by `autoact model info`). */
export function summarizeGguf(info: GgufInfo): string {
    const arch = ggufArchitecture(info);
    const fileType = ggufFileType(info);
    const params = ggufParameterCount(info);
    const lines = [
        `file: ${info.path}`,
        `GGUF version: ${info.version}, ${info.fileSize} bytes, ${Object.keys(info.metadata).length} metadata keys, ${info.tensors.length} tensors`,
        `architecture: ${arch ?? "(none)"}`,
        `name: ${String(metadataValue(info, "general.name") ?? "(none)")}`,
        `file type: ${fileType == null ? "(not set)" : `${fileType.name} (${fileType.id})`}`,
        `parameters: ${params} (${formatCount(params)})`,
        `context length: ${ggufContextLength(info) ?? "(not set)"}`
    ];
    if (arch != null) {
        const num = (key: string) => metadataValue(info, `${arch}.${key}`);
        lines.push(`shape: n_embd ${String(num("embedding_length"))}, layers ${String(num("block_count"))}, heads ${String(num("attention.head_count"))}, kv heads ${String(num("attention.head_count_kv") ?? num("attention.head_count"))}, ff ${String(num("feed_forward_length"))}`);
    }
    const tokens = metadataValue(info, "tokenizer.ggml.tokens");
    lines.push(`tokenizer: ${String(metadataValue(info, "tokenizer.ggml.model") ?? "(none)")}, vocab ${Array.isArray(tokens) ? tokens.length : "?"}`);
    lines.push(`chat template: ${ggufHasChatTemplate(info) ? "yes" : "no"}`);
    const byType = new Map<string, { count: number; elements: number; bytes: number }>();
    for (const t of info.tensors) {
        const entry = byType.get(ggmlTypeName(t.type)) ?? { count: 0, elements: 0, bytes: 0 };
        entry.count++;
        entry.elements += elementCount(t.dims);
        entry.bytes += t.bytes;
        byType.set(ggmlTypeName(t.type), entry);
    }
    lines.push("tensors by type:");
    for (const [type, e] of byType)
        lines.push(`  ${type.padEnd(5)} ${String(e.count).padStart(5)} tensors ${formatCount(e.elements).padStart(8)} params ${String(e.bytes).padStart(12)} bytes`);
    return lines.join("\n");
}

function formatCount(n: number): string {
    if (n >= 1e9)
        return `${(n / 1e9).toFixed(2)}B`;
    if (n >= 1e6)
        return `${(n / 1e6).toFixed(2)}M`;
    if (n >= 1e3)
        return `${(n / 1e3).toFixed(1)}K`;
    return String(n);
}

/** A llama-style decoder's shape as llama.cpp reads it from the metadata and tensors. */
export interface GgufDecoderShape {
    arch: string;
    nEmbd: number;
    layers: number;
    heads: number;
    kvHeads: number;
    ff: number;
    vocab: number;
    ropeTheta: number;
    normEps: number;
    /** No output.weight: the output projection reuses token_embd. */
    tiedEmbeddings: boolean;
    /** q/k/v projections with biases (qwen2). */
    qkvBias: boolean;
}

/** The decoder's shape (e.g. to build a reference model of the same size); an InputError names a missing key. */
export function ggufDecoderShape(info: GgufInfo): GgufDecoderShape {
    const arch = ggufArchitecture(info);
    if (arch == null)
        throw new InputError(`${info.path}: no general.architecture`);
    const number = (key: string, fallback?: number): number => {
        const value = metadataValue(info, `${arch}.${key}`);
        if (typeof value === "number" || typeof value === "bigint")
            return Number(value);
        if (fallback != null)
            return fallback;
        throw new InputError(`${info.path}: no ${arch}.${key}: not a llama-style decoder`);
    };
    const heads = number("attention.head_count");
    const embd = info.tensors.find((t) => t.name === "token_embd.weight");
    if (embd == null)
        throw new InputError(`${info.path}: no token_embd.weight tensor`);
    return {
        arch,
        nEmbd: number("embedding_length"),
        layers: number("block_count"),
        heads,
        kvHeads: number("attention.head_count_kv", heads),
        ff: number("feed_forward_length"),
        vocab: embd.dims[1]!,
        ropeTheta: number("rope.freq_base", 10000),
        normEps: number("attention.layer_norm_rms_epsilon", 1e-5),
        tiedEmbeddings: !info.tensors.some((t) => t.name === "output.weight"),
        qkvBias: info.tensors.some((t) => t.name === "blk.0.attn_q.bias")
    };
}
