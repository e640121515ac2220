import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ChatMLChatWrapper, getLlama, LlamaLogLevel, QwenChatWrapper, resolveChatWrapper, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ggufHasChatTemplate, readGgufInfo } from "../../src/gguf/reader.js";
import { loadModelPresets } from "../../src/gguf/presets.js";
import { syntheticParamCount, writeSyntheticModel, type SyntheticModelOptions, type SynthArch, type SynthType } from "../../src/gguf/synth.js";
import { sha256File } from "../../src/util/fs.js";
import { InputError } from "../../src/util/errors.js";

const THREADS = 2; // always explicit: node-llama-cpp's default of max(4, cores) is ~150x slower on 2 cores
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gguf-synth-"));
let llama: Llama;

beforeAll(async () => {
    llama = await getLlama({ gpu: false, maxThreads: THREADS, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false });
});
afterAll(async () => {
    await llama?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
});

const tinyShape = { nEmbd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 128, ctx: 512 } as const;

async function synth(name: string, options: Partial<SyntheticModelOptions> & Pick<SyntheticModelOptions, "arch">): Promise<string> {
    const out = path.join(dir, `${name}.gguf`);
    await writeSyntheticModel({ ...tinyShape, seed: 5, ...options, out });
    return out;
}

async function greedy(model: LlamaModel, prompt: string, n: number): Promise<Token[]> {
    const context = await model.createContext({ threads: THREADS, contextSize: 256 });
    try {
        const tokens: Token[] = [];
        for await (const token of context.getSequence().evaluate(model.tokenize(prompt), { temperature: 0 })) {
            tokens.push(token);
            if (tokens.length >= n)
                break;
        }
        return tokens;
    } finally {
        await context.dispose();
    }
}

/** Next-token distributions at every prompt position. */
async function distributions(file: string, prompt: string): Promise<Map<Token, number>[]> {
    const model = await llama.loadModel({ modelPath: file });
    const context = await model.createContext({ threads: THREADS, contextSize: 256 });
    try {
        const input = model.tokenize(prompt).map((t) => [t, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: true } }]);
        const out = await context.getSequence().controlledEvaluate(input);
        return out.map((o) => o!.next!.probabilities!);
    } finally {
        await context.dispose();
        await model.dispose();
    }
}

function meanTotalVariation(a: Map<Token, number>[], b: Map<Token, number>[]): number {
    let sum = 0;
    for (let i = 0; i < a.length; i++) {
        let d = 0;
        for (const [token, p] of a[i]!)
            d += Math.abs(p - (b[i]!.get(token) ?? 0));
        sum += d / 2;
    }
    return sum / a.length;
}

describe("synthetic models load and generate in node-llama-cpp", () => {
    const cases: [string, SynthArch, SynthType][] = [
        ["llama f32", "llama", "f32"],
        ["qwen2 q8_0", "qwen2", "q8_0"],
        ["qwen3 q8_0", "qwen3", "q8_0"],
        ["llama q4_0", "llama", "q4_0"],
        ["llama f16", "llama", "f16"]
    ];
    for (const [label, arch, type] of cases) {
        it(`${label}: loads, generates text, greedy is deterministic`, async () => {
            const file = await synth(`${arch}-${type}`, { arch, type });
            const model = await llama.loadModel({ modelPath: file });
            try {
                expect(model.fileInfo.metadata.general.architecture).toBe(arch);
                const first = await greedy(model, "The weather today is", 16);
                const second = await greedy(model, "The weather today is", 16);
                expect(first.length).toBe(16);
                expect(second).toEqual(first);
                expect(model.detokenize(first).length).toBeGreaterThan(0);
                // The byte-level tokenizer round-trips text.
                const text = "Hello, wörld! 123 <tag>";
                expect(model.detokenize(model.tokenize(text))).toBe(text);
            } finally {
                await model.dispose();
            }
        });
    }

    it("qwen2 carries a ChatML template that node-llama-cpp detects; llama has none by default", async () => {
        const qwen = await synth("qwen2-chat", { arch: "qwen2" });
        expect(ggufHasChatTemplate(await readGgufInfo(qwen))).toBe(true);
        const model = await llama.loadModel({ modelPath: qwen });
        try {
            expect(model.fileInfo.metadata.tokenizer.chat_template).toContain("<|im_start|>");
            const wrapper = resolveChatWrapper(model);
            expect(wrapper instanceof ChatMLChatWrapper || wrapper instanceof QwenChatWrapper).toBe(true);
            // The special tokens are single control tokens when special tokens are parsed.
            expect(model.tokenize("<|im_start|>", true)).toHaveLength(1);
            expect(model.tokenize("<|im_end|>", true)).toHaveLength(1);
            expect(model.tokenize("<|im_start|>", false).length).toBeGreaterThan(1);
        } finally {
            await model.dispose();
        }

        const plain = await synth("llama-plain", { arch: "llama" });
        expect(ggufHasChatTemplate(await readGgufInfo(plain))).toBe(false);
        const withTemplate = await synth("llama-chatml", { arch: "llama", chatTemplate: "chatml" });
        expect(ggufHasChatTemplate(await readGgufInfo(withTemplate))).toBe(true);
    });

    it("tied embeddings (no output.weight) load and generate", async () => {
        const file = await synth("qwen2-tied", { arch: "qwen2", type: "q8_0", tiedEmbeddings: true });
        expect((await readGgufInfo(file)).tensors.some((t) => t.name === "output.weight")).toBe(false);
        const model = await llama.loadModel({ modelPath: file });
        try {
            expect(await greedy(model, "abc", 8)).toHaveLength(8);
        } finally {
            await model.dispose();
        }
    });
});

describe("quantized synthetic models stay close to the F32 model of the same seed", () => {
    // n_embd and ff multiples of 256 so Q4_K applies; the same seed gives the same weights in every type.
    const shape = { arch: "llama" as const, nEmbd: 256, layers: 2, heads: 4, kvHeads: 2, ff: 512, ctx: 512, seed: 9 };
    const prompt = "Once upon a time, in a quiet village by the sea, there lived";
    let reference: Map<Token, number>[];
    let unrelated: number;

    beforeAll(async () => {
        reference = await distributions(await synth("cmp-f32", { ...shape, type: "f32" }), prompt);
        // The yardstick: how far an F32 model of another seed is.
        unrelated = meanTotalVariation(reference, await distributions(await synth("cmp-f32-other", { ...shape, type: "f32", seed: 10 }), prompt));
    });

    const bounds: [SynthType, number][] = [["f16", 0.01], ["q8_0", 0.05], ["q4_0", 0.35], ["q4_k", 0.35]];
    for (const [type, bound] of bounds) {
        it(`${type}: mean total variation of next-token distributions < ${bound} (and far below another seed's)`, async () => {
            const tv = meanTotalVariation(reference, await distributions(await synth(`cmp-${type}`, { ...shape, type }), prompt));
            expect(tv).toBeGreaterThan(0);
            expect(tv).toBeLessThan(bound);
            expect(tv).toBeLessThan(unrelated / 2);
        });
    }
});

describe("writeSyntheticModel", () => {
    it("is deterministic from the seed and reports params and bytes", async () => {
        const a = await writeSyntheticModel({ arch: "qwen2", ...tinyShape, type: "q8_0", seed: 3, out: path.join(dir, "det-a.gguf") });
        const b = await writeSyntheticModel({ arch: "qwen2", ...tinyShape, type: "q8_0", seed: 3, out: path.join(dir, "det-b.gguf") });
        const c = await writeSyntheticModel({ arch: "qwen2", ...tinyShape, type: "q8_0", seed: 4, out: path.join(dir, "det-c.gguf") });
        expect(await sha256File(a.path)).toBe(await sha256File(b.path));
        expect(await sha256File(a.path)).not.toBe(await sha256File(c.path));
        expect(a.bytes).toBe(fs.statSync(a.path).size);
        expect(a.params).toBe(syntheticParamCount({ arch: "qwen2", ...tinyShape, type: "q8_0" }));
        const info = await readGgufInfo(a.path);
        // Norms and biases stay F32; 2-D weights take the chosen type.
        for (const t of info.tensors)
            expect(t.type).toBe(t.dims.length === 1 ? 0 : 8);
        expect(info.tensors.filter((t) => t.name.endsWith(".bias"))).toHaveLength(6);
        // qwen3: no biases; an RMS norm of each head's q and k instead
        const qwen3 = await writeSyntheticModel({ arch: "qwen3", ...tinyShape, out: path.join(dir, "qwen3.gguf") });
        const qwen3Info = await readGgufInfo(qwen3.path);
        expect(qwen3.params).toBe(syntheticParamCount({ arch: "qwen3", ...tinyShape }));
        expect(qwen3Info.tensors.filter((t) => t.name.endsWith(".bias"))).toHaveLength(0);
        expect(qwen3Info.tensors.find((t) => t.name === "blk.1.attn_k_norm.weight")?.dims).toEqual([tinyShape.nEmbd / tinyShape.heads]);
    });

    it("presets fill the shape and flags override them", async () => {
        const presets = loadModelPresets();
        expect(Object.keys(presets.synthetic)).toEqual(expect.arrayContaining(["tiny", "25m", "27m", "100m", "0.5b", "1.5b"]));
        const within = (n: number, target: number) => expect(Math.abs(n - target) / target).toBeLessThan(0.2);
        within(syntheticParamCount({ preset: "tiny" }), 100e3);
        within(syntheticParamCount({ preset: "27m" }), 27e6);
        // issue 8's CPU training shape: E512 L8 H8 KV4 F1536, vocab 512, F32
        expect(syntheticParamCount({ preset: "25m" })).toBe(25_698_816);
        within(syntheticParamCount({ preset: "100m" }), 100e6);
        within(syntheticParamCount({ preset: "0.5b" }), 494e6);
        within(syntheticParamCount({ preset: "1.5b" }), 1.54e9);
        const result = await writeSyntheticModel({ preset: "tiny", type: "q8_0", out: path.join(dir, "preset.gguf") });
        const info = await readGgufInfo(result.path);
        expect(info.metadata["general.file_type"]!.value).toBe(7);
        expect(info.metadata["llama.embedding_length"]!.value).toBe(64);
    });

    it("rejects bad shapes with one-line InputErrors", async () => {
        const out = path.join(dir, "bad.gguf");
        const bad = async (options: Partial<SyntheticModelOptions>, pattern: RegExp) => {
            const error = await writeSyntheticModel({ arch: "llama", ...tinyShape, out, ...options } as SyntheticModelOptions).then(() => undefined, (e: unknown) => e);
            expect(error).toBeInstanceOf(InputError);
            expect((error as Error).message).toMatch(pattern);
        };
        await bad({ heads: 5 }, /heads \(5\) must divide n-embd \(64\)/);
        await bad({ kvHeads: 3 }, /kv-heads \(3\) must divide heads \(4\)/);
        await bad({ type: "q4_0", ff: 100 }, /ff \(100\) must be a multiple of 32/);
        await bad({ type: "q4_k" }, /n-embd \(64\) must be a multiple of 256/);
        await bad({ arch: "gpt2" as "llama" }, /unknown architecture "gpt2"/);
        await bad({ type: "q3" as SynthType }, /unknown model type "q3"/);
        await bad({ vocab: 100 }, /vocab \(100\) must be at least 257/);
        await bad({ layers: 0 }, /layers must be a positive integer/);
        expect(fs.existsSync(out)).toBe(false);
    });
});
