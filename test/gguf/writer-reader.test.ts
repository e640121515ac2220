import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, describe, expect, it } from "vitest";
import {
    ggufArchitecture, ggufChatTemplate, ggufContextLength, ggufFileType, ggufParameterCount, readGgufInfo,
    readTensorData, readTensorValues
} from "../../src/gguf/reader.js";
import { quantize } from "../../src/gguf/quantize.js";
import { Xorshift128 } from "../../src/gguf/random.js";
import { GgmlType, GgufValueType } from "../../src/gguf/types.js";
import { gguf, writeGguf, type GgufMetadataInput, type GgufTensorSpec } from "../../src/gguf/writer.js";
import { InputError } from "../../src/util/errors.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gguf-rw-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function values(n: number, seed: number): Float32Array {
    const out = new Float32Array(n);
    new Xorshift128(seed, "rw").fillUniform(out, 0.5);
    return out;
}

const metadata: Record<string, GgufMetadataInput> = {
    "general.architecture": "llama",
    "general.name": "round trip ✓ ünïcode",
    "general.file_type": gguf.u32(7),
    "llama.context_length": gguf.u32(4096),
    "test.u8": gguf.u8(255),
    "test.i8": gguf.i8(-128),
    "test.u16": gguf.u16(65535),
    "test.i16": gguf.i16(-32768),
    "test.u32": gguf.u32(4294967295),
    "test.i32": gguf.i32(-2147483648),
    "test.f32": gguf.f32(1e-5),
    "test.bool": true,
    "test.false": gguf.bool(false),
    "test.empty": "",
    "test.u64": gguf.u64(2n ** 64n - 1n),
    "test.i64": gguf.i64(-(2n ** 63n)),
    "test.f64": gguf.f64(Math.PI),
    "test.strings": ["a", "", "Ġhello", "<|im_start|>"],
    "test.i32s": gguf.array(GgufValueType.INT32, [1, -2, 3]),
    "test.f32s": gguf.array(GgufValueType.FLOAT32, [0.5, -1.5]),
    "test.bools": gguf.array(GgufValueType.BOOL, [true, false]),
    "test.u64s": gguf.array(GgufValueType.UINT64, [0n, 5n]),
    "test.empty_array": gguf.array(GgufValueType.UINT8, []),
    "tokenizer.chat_template": "{{ messages }}"
};

const f32Data = values(64 * 3, 1);
const mixed: GgufTensorSpec[] = [
    { name: "a.f32", dims: [64, 3], type: GgmlType.F32, data: f32Data },
    { name: "b.f16", dims: [64, 2], type: GgmlType.F16, data: values(128, 2) },
    { name: "c.q8_0", dims: [96, 2], type: GgmlType.Q8_0, data: values(192, 3) },
    { name: "d.q4_0", dims: [32, 5], type: GgmlType.Q4_0, data: values(160, 4) },
    { name: "e.q4_k", dims: [256, 2], type: GgmlType.Q4_K, data: values(512, 5) },
    { name: "f.vector", dims: [7], type: GgmlType.F32, data: values(7, 6) },
    // Streamed in chunks of whole rows.
    { name: "g.stream", dims: [64, 4], type: GgmlType.Q8_0, data: function* () { for (let r = 0; r < 4; r++) yield values(64, 100 + r); } },
    // Already-encoded bytes.
    { name: "h.raw", dims: [32], type: GgmlType.Q8_0, data: quantize(GgmlType.Q8_0, values(32, 8)) }
];

describe("GGUF writer and reader", () => {
    it("round-trips metadata of every type and tensors of every supported type", async () => {
        const file = path.join(dir, "mixed.gguf");
        const result = await writeGguf({ path: file, metadata, tensors: mixed });
        expect(result.bytes).toBe(fs.statSync(file).size);
        expect(result.elements).toBe(192 + 128 + 192 + 160 + 512 + 7 + 256 + 32);

        const info = await readGgufInfo(file);
        expect(info.version).toBe(3);
        expect(info.alignment).toBe(32);
        expect(info.dataOffset % 32).toBe(0);
        expect(Object.keys(info.metadata)).toEqual(Object.keys(metadata));
        expect(info.metadata["test.u8"]).toEqual({ type: GgufValueType.UINT8, value: 255 });
        expect(info.metadata["test.i8"]!.value).toBe(-128);
        expect(info.metadata["test.u16"]!.value).toBe(65535);
        expect(info.metadata["test.i16"]!.value).toBe(-32768);
        expect(info.metadata["test.u32"]!.value).toBe(4294967295);
        expect(info.metadata["test.i32"]!.value).toBe(-2147483648);
        expect(info.metadata["test.f32"]!.value).toBe(Math.fround(1e-5));
        expect(info.metadata["test.bool"]).toEqual({ type: GgufValueType.BOOL, value: true });
        expect(info.metadata["test.false"]!.value).toBe(false);
        expect(info.metadata["test.empty"]!.value).toBe("");
        expect(info.metadata["test.u64"]!.value).toBe(2n ** 64n - 1n);
        expect(info.metadata["test.i64"]!.value).toBe(-(2n ** 63n));
        expect(info.metadata["test.f64"]!.value).toBe(Math.PI);
        expect(info.metadata["general.name"]!.value).toBe("round trip ✓ ünïcode");
        expect(info.metadata["test.strings"]).toEqual({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: ["a", "", "Ġhello", "<|im_start|>"] });
        expect(info.metadata["test.i32s"]!.value).toEqual([1, -2, 3]);
        expect(info.metadata["test.f32s"]!.value).toEqual([0.5, -1.5]);
        expect(info.metadata["test.bools"]!.value).toEqual([true, false]);
        expect(info.metadata["test.u64s"]!.value).toEqual([0n, 5n]);
        expect(info.metadata["test.empty_array"]).toEqual({ type: GgufValueType.ARRAY, itemType: GgufValueType.UINT8, value: [] });

        expect(ggufArchitecture(info)).toBe("llama");
        expect(ggufContextLength(info)).toBe(4096);
        expect(ggufFileType(info)).toEqual({ id: 7, name: "MOSTLY_Q8_0" });
        expect(ggufChatTemplate(info)).toBe("{{ messages }}");
        expect(ggufParameterCount(info)).toBe(result.elements);

        expect(info.tensors.map((t) => [t.name, t.dims, t.type])).toEqual(mixed.map((t) => [t.name, [...t.dims], t.type]));
        for (const t of info.tensors)
            expect(t.fileOffset % 32).toBe(0);
        // Exact bytes for every tensor: F32 values equal, encoded ones equal to encoding the input.
        expect(await readTensorValues(info, "a.f32")).toEqual(f32Data);
        for (const spec of mixed.slice(1, 6))
            expect(await readTensorData(info, spec.name)).toEqual(quantize(spec.type, spec.data as Float32Array));
        const streamed = new Float32Array(256);
        for (let r = 0; r < 4; r++)
            streamed.set(values(64, 100 + r), r * 64);
        expect(await readTensorData(info, "g.stream")).toEqual(quantize(GgmlType.Q8_0, streamed));
        expect(await readTensorData(info, "h.raw")).toEqual(mixed[7]!.data);
    });

    it("writes what node-llama-cpp's own GGUF parser reads", async () => {
        const file = path.join(dir, "mixed-nlc.gguf");
        await writeGguf({ path: file, metadata, tensors: mixed, alignment: 64 });
        const theirs = await readGgufFileInfo(file, { logWarnings: false });
        const ours = await readGgufInfo(file);
        expect(ours.alignment).toBe(64);
        expect(ours.metadata["general.alignment"]!.value).toBe(64);
        expect(theirs.version).toBe(3);
        expect(theirs.metadata.general.architecture).toBe("llama");
        expect(theirs.metadata.general.name).toBe("round trip ✓ ünïcode");
        expect(theirs.tensorInfo!.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.fileOffset)]))
            .toEqual(ours.tensors.map((t) => [t.name, t.dims, t.type, t.fileOffset]));
    });

    it("leaves no file (and no temporary file) when writing fails midway", async () => {
        const file = path.join(dir, "failing.gguf");
        const failing: GgufTensorSpec = {
            name: "x", dims: [32, 4], type: GgmlType.F32,
            data: function* () { yield values(32, 1); throw new Error("generator broke"); }
        };
        await expect(writeGguf({ path: file, metadata: { "general.architecture": "llama" }, tensors: [failing] })).rejects.toThrow("generator broke");
        expect(fs.existsSync(file)).toBe(false);
        expect(fs.readdirSync(dir).filter((f) => f.includes("failing"))).toEqual([]);
        // A chunk of the wrong size is a bug in the caller, named with the tensor.
        const short: GgufTensorSpec = { name: "short", dims: [32, 4], type: GgmlType.F32, data: values(64, 1) };
        await expect(writeGguf({ path: file, metadata: {}, tensors: [short] })).rejects.toThrow(/tensor short: wrote 256 bytes/);
        await expect(writeGguf({ path: file, metadata: { n: 5 as unknown as GgufMetadataInput }, tensors: [] })).rejects.toThrow(/numbers need a type/);
    });
});

describe("GGUF reader errors", () => {
    const good = path.join(dir, "good.gguf");
    const expectInputError = async (file: string, pattern: RegExp) => {
        const error = await readGgufInfo(file).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(InputError);
        const message = (error as Error).message;
        expect(message).toMatch(pattern);
        expect(message).toContain(file);
        expect(message).not.toContain("\n");
    };

    it("names the file and what is wrong", async () => {
        await writeGguf({ path: good, metadata, tensors: mixed });
        const bytes = fs.readFileSync(good);

        const badMagic = path.join(dir, "bad-magic.gguf");
        fs.writeFileSync(badMagic, Buffer.concat([Buffer.from("GGML"), bytes.subarray(4)]));
        await expectInputError(badMagic, /bad magic/);

        const badVersion = path.join(dir, "bad-version.gguf");
        const v = Buffer.from(bytes);
        v.writeUInt32LE(99, 4);
        fs.writeFileSync(badVersion, v);
        await expectInputError(badVersion, /unsupported GGUF version 99/);

        const info = await readGgufInfo(good);
        const truncatedHeader = path.join(dir, "truncated-header.gguf");
        fs.writeFileSync(truncatedHeader, bytes.subarray(0, 200));
        await expectInputError(truncatedHeader, /truncated/);

        const truncatedData = path.join(dir, "truncated-data.gguf");
        fs.writeFileSync(truncatedData, bytes.subarray(0, info.dataOffset + 100));
        await expectInputError(truncatedData, new RegExp(`truncated at byte ${info.dataOffset + 100}: tensor`));

        const empty = path.join(dir, "empty.gguf");
        fs.writeFileSync(empty, "");
        await expectInputError(empty, /too short/);

        await expectInputError(path.join(dir, "missing.gguf"), /not found/);
    });

    it("does not read tensor data to parse the header (large files stay cheap)", async () => {
        // A sparse file: a real header and ~4 GB of tensor data that is never read.
        const big = path.join(dir, "sparse-big.gguf");
        const n = 1 << 30;
        await writeGguf({ path: big, metadata: { "general.architecture": "llama" }, tensors: [{ name: "bigtensor", dims: [32], type: GgmlType.F32, data: new Float32Array(32) }] });
        const header = fs.readFileSync(big);
        // Rewrite the one tensor's dims to [n] F32 (4 GiB) and extend the file sparsely.
        const info = await readGgufInfo(big);
        const dimsAt = header.indexOf(Buffer.from("bigtensor")) + "bigtensor".length + 4;
        header.writeBigUInt64LE(BigInt(n), dimsAt);
        fs.writeFileSync(big, header);
        fs.truncateSync(big, info.dataOffset + n * 4);
        const rssBefore = process.memoryUsage().rss;
        const bigInfo = await readGgufInfo(big);
        expect(bigInfo.tensors[0]!.bytes).toBe(n * 4);
        expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 << 20);
        fs.rmSync(big);
    });
});
