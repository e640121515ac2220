import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { checkAdapterFitsBase, checkGgufFileSync, describeAdapter } from "../../src/llm/gguf-check.js";
import { gguf, writeGguf } from "../../src/gguf/writer.js";
import { GgmlType, GgufValueType } from "../../src/gguf/types.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot } from "../../src/util/package.js";
import { rewriteGguf, type MetadataEdit } from "./gguf-fixtures.js";

const tinyModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const haveModel = fs.existsSync(tinyModel);
if (!haveModel)
    console.warn(`skipping GGUF hyperparameter checks: ${tinyModel} is absent`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gguf-check-"));

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
    ["embd-not-multiple", (m) => { m["llama.attention.head_count"] = gguf.u32(6); m["llama.attention.head_count_kv"] = gguf.u32(6); }, /embedding_length 64 is not a multiple of .*head_count 6/]
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

const errorOf = (fn: () => unknown): string => {
    try {
        fn();
    } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        return (error as Error).message;
    }
    throw new Error("expected an InputError");
};

describe.skipIf(!haveModel)("the one GGUF check", () => {
    beforeAll(async () => {
        for (const [name, edit] of badModelEdits)
            await rewriteGguf(tinyModel, path.join(dir, `${name}.gguf`), edit);
    });

    it("passes the real model", () => {
        expect(checkGgufFileSync(tinyModel).tensors).toHaveLength(48);
    });

    it("refuses every hyperparameter llama.cpp asserts on, with one line naming the file", () => {
        for (const [name, , pattern] of badModelEdits) {
            const message = errorOf(() => checkGgufFileSync(path.join(dir, `${name}.gguf`)));
            expect(message, name).toMatch(pattern);
            expect(message, name).toContain(`${name}.gguf`);
            expect(message.split("\n"), name).toHaveLength(1);
        }
    });

    it("refuses a header claiming 2^63 tensors at once, without reading further", () => {
        const header = Buffer.alloc(24);
        header.write("GGUF", 0, "latin1");
        header.writeUInt32LE(3, 4);
        header.writeBigUInt64LE(1n << 63n, 8);
        header.writeBigUInt64LE(0n, 16);
        const file = path.join(dir, "huge-count.gguf");
        fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(4096)]));
        const before = process.memoryUsage().rss;
        const started = performance.now();
        expect(errorOf(() => checkGgufFileSync(file))).toMatch(/tensor count 9223372036854775808 .* cannot fit/);
        expect(performance.now() - started).toBeLessThan(1000);
        expect(process.memoryUsage().rss - before).toBeLessThan(64 << 20);
    });

    it("checks adapters on their own and against the base; describes a good one", async () => {
        const good = await writeAdapter(path.join(dir, "good-adapter.gguf"));
        checkGgufFileSync(good, "adapter");
        checkAdapterFitsBase(good, tinyModel);
        const text = describeAdapter(checkGgufFileSync(good))!;
        expect(text).toMatch(/agent: plan/);
        expect(text).toMatch(/rank: 4, alpha: 8/);
        expect(text).toMatch(/targets: attn_q/);
        expect(text).toMatch(/base: /);

        expect(errorOf(() => checkGgufFileSync(tinyModel, "adapter"))).toMatch(/not a LoRA adapter/);
        const noB = await writeAdapter(path.join(dir, "no-b.gguf"), { dropB: true });
        expect(errorOf(() => checkGgufFileSync(noB))).toMatch(/no lora_b partner/);
    });

    it("refuses an adapter whose shapes do not fit the base, or whose ranks disagree", async () => {
        const wrongShape = await writeAdapter(path.join(dir, "wrong-shape.gguf"), { inDim: 32 });
        expect(errorOf(() => checkAdapterFitsBase(wrongShape, tinyModel))).toMatch(/lora_a \[32, 4\] does not fit blk\.0\.attn_q\.weight \[64, 64\]/);
        const ranks = await writeAdapter(path.join(dir, "ranks.gguf"), { rankB: 2 });
        expect(errorOf(() => checkGgufFileSync(ranks))).toMatch(/has rank 2, the others 4|has rank 4, the others 2/);
    });
});
