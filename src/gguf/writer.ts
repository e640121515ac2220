import fs from "node:fs";
import path from "node:path";
import { makeDirectory, releaseTemporary, temporaryNameFor } from "../util/fs.js";
import { quantize } from "./quantize.js";
import {
    GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GGML_TYPE_TRAITS, GgmlType, GgufValueType,
    ggmlTypeName, tensorByteSize
} from "./types.js";

export type GgufScalarType = Exclude<GgufValueType, GgufValueType.ARRAY>;
export type GgufScalar = number | bigint | boolean | string;

/** A typed metadata value: scalars carry their GGUF type, arrays their item type. */
export type GgufMetadataValue =
    | { type: GgufScalarType; value: GgufScalar }
    | { type: GgufValueType.ARRAY; itemType: GgufScalarType; value: readonly GgufScalar[] };

/**
 * What `metadata` accepts: a typed value, or a bare string / boolean / string[] (typed as
 * STRING, BOOL, ARRAY of STRING). Numbers must be typed: llama.cpp checks the type of
 * each key (u32 for lengths, f32 for epsilons), so guessing would write files it rejects.
 */
export type GgufMetadataInput = GgufMetadataValue | string | boolean | readonly string[];

/** Helpers that build typed metadata values. */
export const gguf = {
    u8: (value: number): GgufMetadataValue => ({ type: GgufValueType.UINT8, value }),
    i8: (value: number): GgufMetadataValue => ({ type: GgufValueType.INT8, value }),
    u16: (value: number): GgufMetadataValue => ({ type: GgufValueType.UINT16, value }),
    i16: (value: number): GgufMetadataValue => ({ type: GgufValueType.INT16, value }),
    u32: (value: number): GgufMetadataValue => ({ type: GgufValueType.UINT32, value }),
    i32: (value: number): GgufMetadataValue => ({ type: GgufValueType.INT32, value }),
    f32: (value: number): GgufMetadataValue => ({ type: GgufValueType.FLOAT32, value }),
    bool: (value: boolean): GgufMetadataValue => ({ type: GgufValueType.BOOL, value }),
    str: (value: string): GgufMetadataValue => ({ type: GgufValueType.STRING, value }),
    u64: (value: number | bigint): GgufMetadataValue => ({ type: GgufValueType.UINT64, value }),
    i64: (value: number | bigint): GgufMetadataValue => ({ type: GgufValueType.INT64, value }),
    f64: (value: number): GgufMetadataValue => ({ type: GgufValueType.FLOAT64, value }),
    array: (itemType: GgufScalarType, value: readonly GgufScalar[]): GgufMetadataValue =>
        ({ type: GgufValueType.ARRAY, itemType, value })
};

/** Float chunks are encoded to the tensor's type; byte chunks must already be in its layout. */
export type GgufTensorChunk = Float32Array | Uint8Array;

export interface GgufTensorSpec {
    name: string;
    /** ggml shape, ne0 (the row length) first: a [rows, cols] matrix in PyTorch terms is `[cols, rows]`. */
    dims: readonly number[];
    type: GgmlType;
    /**
     * The values: one chunk, or a function returning the chunks in order (called once, while
     * writing, so a tensor is generated only when its turn comes). Float chunks must hold a
     * multiple of the type's block size.
     */
    data: GgufTensorChunk | (() => Iterable<GgufTensorChunk>);
}

export interface WriteGgufOptions {
    /** Output file; written under a temporary name beside it and renamed when complete. */
    path: string;
    /** Key -> value, written in insertion order. */
    metadata: Record<string, GgufMetadataInput>;
    tensors: readonly GgufTensorSpec[];
    /** Data alignment in bytes; other than 32 it is recorded as `general.alignment`. Defaults to 32. */
    alignment?: number;
}

export interface WriteGgufResult {
    path: string;
    /** File size in bytes. */
    bytes: number;
    /** Number of tensor elements (parameters). */
    elements: number;
}

const FLUSH_BYTES = 8 << 20;

/**
 * Writes a GGUF v3 file, streaming tensor data chunk by chunk (memory stays at one chunk
 * plus an 8 MiB buffer), to a temporary name that is renamed on success and removed on failure.
 */
export async function writeGguf(options: WriteGgufOptions): Promise<WriteGgufResult> {
    let alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    const metadata: [string, GgufMetadataValue][] = Object.entries(options.metadata).map(([k, v]) => [k, normalizeValue(k, v)]);
    const alignmentEntry = metadata.find(([k]) => k === "general.alignment");
    if (alignmentEntry != null)
        alignment = Number(alignmentEntry[1].value);
    else if (alignment !== GGUF_DEFAULT_ALIGNMENT)
        metadata.push(["general.alignment", gguf.u32(alignment)]);
    if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0)
        throw new Error(`GGUF alignment must be a positive multiple of 8, got ${alignment}`);

    const names = new Set<string>();
    const layout: { spec: GgufTensorSpec; size: number; offset: number }[] = [];
    let offset = 0;
    let elements = 0;
    for (const spec of options.tensors) {
        if (names.has(spec.name))
            throw new Error(`duplicate tensor name ${spec.name}`);
        names.add(spec.name);
        const size = tensorByteSize(spec.type, spec.dims);
        layout.push({ spec, size, offset });
        offset = alignUp(offset + size, alignment);
        elements += spec.dims.reduce((a, b) => a * b, 1);
    }

    const header = new ByteSink();
    header.u32(GGUF_MAGIC);
    header.u32(GGUF_VERSION);
    header.u64(layout.length);
    header.u64(metadata.length);
    for (const [key, value] of metadata) {
        header.string(key);
        header.u32(value.type);
        if (value.type === GgufValueType.ARRAY) {
            header.u32(value.itemType);
            header.u64(value.value.length);
            for (const item of value.value)
                header.scalar(value.itemType, item, key);
        } else
            header.scalar(value.type, value.value, key);
    }
    for (const { spec, offset: tensorOffset } of layout) {
        header.string(spec.name);
        header.u32(spec.dims.length);
        for (const d of spec.dims)
            header.u64(d);
        header.u32(spec.type);
        header.u64(tensorOffset);
    }

    const target = path.resolve(options.path);
    makeDirectory(path.dirname(target));
    const tmp = temporaryNameFor(target);
    const file = new BufferedFile(await fs.promises.open(tmp, "w"));
    try {
        await file.write(header.bytes());
        await file.pad(alignment);
        for (const { spec, size } of layout) {
            const start = file.position;
            const chunks = typeof spec.data === "function" ? spec.data() : [spec.data];
            for (const chunk of chunks)
                await file.write(encodeChunk(spec, chunk));
            const written = file.position - start;
            if (written !== size)
                throw new Error(`tensor ${spec.name}: wrote ${written} bytes, ${ggmlTypeName(spec.type)} [${spec.dims.join(", ")}] takes ${size}`);
            await file.pad(alignment);
        }
        await file.close();
        await fs.promises.rename(tmp, target);
        return { path: target, bytes: file.position, elements };
    } catch (error) {
        await file.close().catch(() => undefined);
        await fs.promises.rm(tmp, { force: true });
        throw error;
    } finally {
        releaseTemporary(tmp);
    }
}

function encodeChunk(spec: GgufTensorSpec, chunk: GgufTensorChunk): Uint8Array {
    if (chunk instanceof Float32Array) {
        const blockSize = GGML_TYPE_TRAITS[spec.type]!.blockSize;
        if (chunk.length % blockSize !== 0)
            throw new Error(`tensor ${spec.name}: a chunk of ${chunk.length} values is not a multiple of ${ggmlTypeName(spec.type)}'s block size ${blockSize}`);
        return quantize(spec.type, chunk);
    }
    return chunk;
}

function normalizeValue(key: string, value: GgufMetadataInput): GgufMetadataValue {
    if (typeof value === "string")
        return gguf.str(value);
    if (typeof value === "boolean")
        return gguf.bool(value);
    if (Array.isArray(value))
        return gguf.array(GgufValueType.STRING, value as readonly string[]);
    if (typeof value === "object" && value != null && "type" in value)
        return value as GgufMetadataValue;
    throw new Error(`metadata ${key}: numbers need a type (use gguf.u32(...), gguf.f32(...), ...)`);
}

function alignUp(n: number, alignment: number): number {
    return Math.ceil(n / alignment) * alignment;
}

/** Grows a byte buffer for the header. */
class ByteSink {
    private buf = Buffer.alloc(1 << 16);
    private len = 0;

    private reserve(n: number): void {
        if (this.len + n <= this.buf.length)
            return;
        const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
        this.buf.copy(next, 0, 0, this.len);
        this.buf = next;
    }

    u32(v: number): void {
        this.reserve(4);
        this.buf.writeUInt32LE(v >>> 0, this.len);
        this.len += 4;
    }

    u64(v: number | bigint): void {
        this.reserve(8);
        this.buf.writeBigUInt64LE(BigInt(v), this.len);
        this.len += 8;
    }

    string(s: string): void {
        const n = Buffer.byteLength(s, "utf8");
        this.u64(n);
        this.reserve(n);
        this.buf.write(s, this.len, "utf8");
        this.len += n;
    }

    scalar(type: GgufValueType, v: GgufScalar, key: string): void {
        const bad = (): never => {
            throw new Error(`metadata ${key}: ${String(v)} is not a valid ${GgufValueType[type]}`);
        };
        if (type === GgufValueType.STRING) {
            if (typeof v !== "string")
                bad();
            this.string(v as string);
            return;
        }
        if (type === GgufValueType.BOOL) {
            if (typeof v !== "boolean")
                bad();
            this.reserve(1);
            this.buf.writeUInt8(v ? 1 : 0, this.len++);
            return;
        }
        if (typeof v !== "number" && typeof v !== "bigint")
            bad();
        const n = v as number | bigint;
        try {
            switch (type) {
                case GgufValueType.UINT8: this.reserve(1); this.buf.writeUInt8(Number(n), this.len); this.len += 1; break;
                case GgufValueType.INT8: this.reserve(1); this.buf.writeInt8(Number(n), this.len); this.len += 1; break;
                case GgufValueType.UINT16: this.reserve(2); this.buf.writeUInt16LE(Number(n), this.len); this.len += 2; break;
                case GgufValueType.INT16: this.reserve(2); this.buf.writeInt16LE(Number(n), this.len); this.len += 2; break;
                case GgufValueType.UINT32: this.reserve(4); this.buf.writeUInt32LE(Number(n), this.len); this.len += 4; break;
                case GgufValueType.INT32: this.reserve(4); this.buf.writeInt32LE(Number(n), this.len); this.len += 4; break;
                case GgufValueType.FLOAT32: this.reserve(4); this.buf.writeFloatLE(Number(n), this.len); this.len += 4; break;
                case GgufValueType.UINT64: this.reserve(8); this.buf.writeBigUInt64LE(BigInt(n), this.len); this.len += 8; break;
                case GgufValueType.INT64: this.reserve(8); this.buf.writeBigInt64LE(BigInt(n), this.len); this.len += 8; break;
                case GgufValueType.FLOAT64: this.reserve(8); this.buf.writeDoubleLE(Number(n), this.len); this.len += 8; break;
                default: bad();
            }
        } catch (error) {
            if (error instanceof RangeError || error instanceof TypeError)
                bad();
            throw error;
        }
    }

    bytes(): Uint8Array {
        return this.buf.subarray(0, this.len);
    }
}

/** Collects small writes into large ones. */
class BufferedFile {
    position = 0;
    private buf = Buffer.alloc(FLUSH_BYTES);
    private len = 0;

    constructor(private readonly handle: fs.promises.FileHandle) {}

    async write(data: Uint8Array): Promise<void> {
        this.position += data.length;
        if (data.length >= FLUSH_BYTES) {
            await this.flush();
            await writeAll(this.handle, data);
            return;
        }
        if (this.len + data.length > FLUSH_BYTES)
            await this.flush();
        this.buf.set(data, this.len);
        this.len += data.length;
    }

    async pad(alignment: number): Promise<void> {
        const n = alignUp(this.position, alignment) - this.position;
        if (n > 0)
            await this.write(new Uint8Array(n));
    }

    async flush(): Promise<void> {
        if (this.len > 0)
            await writeAll(this.handle, this.buf.subarray(0, this.len));
        this.len = 0;
    }

    async close(): Promise<void> {
        try {
            await this.flush();
        } finally {
            await this.handle.close();
        }
    }
}

async function writeAll(handle: fs.promises.FileHandle, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
        const { bytesWritten } = await handle.write(data, done, data.length - done);
        done += bytesWritten;
    }
}
