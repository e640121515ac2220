/**
 * GGUF format constants (version 3). Numbers are those of the file format and of ggml's
 * `ggml_type` / llama.cpp's `llama_ftype`; they are part of the on-disk contract.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export enum GgufValueType {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12
}

/** Tensor element types (only those this package reads sizes of are listed). */
export enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ4_NL = 20,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30
}

/** Elements per block and bytes per block, as ggml lays them out. */
export const GGML_TYPE_TRAITS: Readonly<Record<number, { name: string; blockSize: number; typeSize: number }>> = {
    [GgmlType.F32]: { name: "F32", blockSize: 1, typeSize: 4 },
    [GgmlType.F16]: { name: "F16", blockSize: 1, typeSize: 2 },
    [GgmlType.Q4_0]: { name: "Q4_0", blockSize: 32, typeSize: 18 },
    [GgmlType.Q4_1]: { name: "Q4_1", blockSize: 32, typeSize: 20 },
    [GgmlType.Q5_0]: { name: "Q5_0", blockSize: 32, typeSize: 22 },
    [GgmlType.Q5_1]: { name: "Q5_1", blockSize: 32, typeSize: 24 },
    [GgmlType.Q8_0]: { name: "Q8_0", blockSize: 32, typeSize: 34 },
    [GgmlType.Q8_1]: { name: "Q8_1", blockSize: 32, typeSize: 36 },
    [GgmlType.Q2_K]: { name: "Q2_K", blockSize: 256, typeSize: 84 },
    [GgmlType.Q3_K]: { name: "Q3_K", blockSize: 256, typeSize: 110 },
    [GgmlType.Q4_K]: { name: "Q4_K", blockSize: 256, typeSize: 144 },
    [GgmlType.Q5_K]: { name: "Q5_K", blockSize: 256, typeSize: 176 },
    [GgmlType.Q6_K]: { name: "Q6_K", blockSize: 256, typeSize: 210 },
    [GgmlType.Q8_K]: { name: "Q8_K", blockSize: 256, typeSize: 292 },
    [GgmlType.IQ4_NL]: { name: "IQ4_NL", blockSize: 32, typeSize: 18 },
    [GgmlType.I8]: { name: "I8", blockSize: 1, typeSize: 1 },
    [GgmlType.I16]: { name: "I16", blockSize: 1, typeSize: 2 },
    [GgmlType.I32]: { name: "I32", blockSize: 1, typeSize: 4 },
    [GgmlType.I64]: { name: "I64", blockSize: 1, typeSize: 8 },
    [GgmlType.F64]: { name: "F64", blockSize: 1, typeSize: 8 },
    [GgmlType.BF16]: { name: "BF16", blockSize: 1, typeSize: 2 }
};

export function ggmlTypeName(type: number): string {
    return GGML_TYPE_TRAITS[type]?.name ?? `type${type}`;
}

/**
 * Bytes a tensor of this type and ggml shape (ne0 first: the row length) takes.
 * Throws when ne0 is not a multiple of the type's block size.
 */
export function tensorByteSize(type: number, dims: readonly number[]): number {
    const traits = GGML_TYPE_TRAITS[type];
    if (traits == null)
        throw new Error(`unsupported ggml type ${type}`);
    const rowLength = dims[0] ?? 1;
    if (rowLength % traits.blockSize !== 0)
        throw new Error(`row length ${rowLength} is not a multiple of ${traits.name}'s block size ${traits.blockSize}`);
    let rows = 1;
    for (let i = 1; i < dims.length; i++)
        rows *= dims[i]!;
    return (rowLength / traits.blockSize) * traits.typeSize * rows;
}

export function elementCount(dims: readonly number[]): number {
    let n = 1;
    for (const d of dims)
        n *= d;
    return n;
}

/** llama.cpp's `general.file_type` values (llama_ftype) for the types this package writes. */
export enum LlamaFileType {
    ALL_F32 = 0,
    MOSTLY_F16 = 1,
    MOSTLY_Q4_0 = 2,
    MOSTLY_Q4_1 = 3,
    MOSTLY_Q8_0 = 7,
    MOSTLY_Q5_0 = 8,
    MOSTLY_Q5_1 = 9,
    MOSTLY_Q2_K = 10,
    MOSTLY_Q3_K_S = 11,
    MOSTLY_Q3_K_M = 12,
    MOSTLY_Q3_K_L = 13,
    MOSTLY_Q4_K_S = 14,
    MOSTLY_Q4_K_M = 15,
    MOSTLY_Q5_K_S = 16,
    MOSTLY_Q5_K_M = 17,
    MOSTLY_Q6_K = 18,
    MOSTLY_BF16 = 32
}

export function llamaFileTypeName(fileType: number): string {
    return LlamaFileType[fileType] ?? `file_type ${fileType}`;
}
