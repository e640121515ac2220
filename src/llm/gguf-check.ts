import fs from "node:fs";
import { readGgufFileInfo } from "node-llama-cpp";
import { InputError, errorMessage } from "../util/errors.js";

/** Bytes per block and elements per block of the GGML types whose size we can check exactly. */
const typeSizes: Record<number, [bytes: number, elements: number]> = {
    0: [4, 1], // F32
    1: [2, 1], // F16
    2: [18, 32], // Q4_0
    3: [20, 32], // Q4_1
    6: [22, 32], // Q5_0
    7: [24, 32], // Q5_1
    8: [34, 32], // Q8_0
    30: [2, 1] // BF16
};

/**
 * Checks that a file is a sane GGUF before llama.cpp sees it: llama.cpp aborts the whole
 * process on some corrupt files (bad types, truncated data) instead of returning an error.
 * Throws an InputError naming the file and what is wrong.
 */
export async function checkGgufFile(filePath: string, what = "model"): Promise<void> {
    let stat: fs.Stats;
    try {
        stat = fs.statSync(filePath);
    } catch {
        throw new InputError(`${what} file not found: ${filePath}`);
    }
    if (!stat.isFile())
        throw new InputError(`${what} path is not a regular file: ${filePath}`);
    if (stat.size < 24)
        throw new InputError(`${what} file is not a GGUF file (only ${stat.size} bytes): ${filePath}`);

    const header = Buffer.alloc(24);
    const fd = fs.openSync(filePath, "r");
    try {
        fs.readSync(fd, header, 0, 24, 0);
    } finally {
        fs.closeSync(fd);
    }
    if (header.toString("latin1", 0, 4) !== "GGUF")
        throw new InputError(`${what} file is not a GGUF file (bad magic ${JSON.stringify(header.toString("latin1", 0, 4))}): ${filePath}`);
    const version = header.readUInt32LE(4);
    if (version < 2 || version > 3)
        throw new InputError(`${what} file has unsupported GGUF version ${version}: ${filePath}`);
    const tensorCount = header.readBigUInt64LE(8);
    const kvCount = header.readBigUInt64LE(16);
    // Every tensor info and key takes at least ~16 bytes, so larger counts mean garbage.
    if (tensorCount > BigInt(stat.size) / 16n || kvCount > BigInt(stat.size) / 16n)
        throw new InputError(`${what} file has a corrupt GGUF header (${tensorCount} tensors, ${kvCount} keys in ${stat.size} bytes): ${filePath}`);

    let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
    try {
        info = await readGgufFileInfo(filePath, { readTensorInfo: true, sourceType: "filesystem", logWarnings: false });
    } catch (error) {
        throw new InputError(`${what} file has corrupt GGUF metadata (${errorMessage(error).split("\n")[0]}): ${filePath}`);
    }
    for (const tensor of info.tensorInfo ?? []) {
        const size = typeSizes[tensor.ggmlType];
        const start = Number(tensor.fileOffset);
        let bytes = 0;
        if (size != null) {
            const elements = tensor.dimensions.reduce<number>((a, d) => a * Number(d), 1);
            bytes = Math.ceil(elements / size[1]) * size[0];
        } else if (tensor.ggmlType > 42) {
            throw new InputError(`${what} file has tensor ${tensor.name} of unknown GGML type ${tensor.ggmlType}: ${filePath}`);
        }
        if (!Number.isFinite(start) || start + bytes > stat.size)
            throw new InputError(`${what} file is truncated: tensor ${tensor.name} ends at byte ${start + bytes} of ${stat.size}: ${filePath}`);
    }
}
