import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, defaultThreadCount, type Engine, type GenerationRequest, type Generator, type LoadedModel } from "../../src/llm/engine.js";
import { InputError, RuntimeFailure } from "../../src/util/errors.js";
import { resetEngineHelperForTests } from "../../src/llm/native-access.js";
import { hasSharedModel, makeTinyModel, sharedModel, tempDir, writeLoraAdapter } from "./helpers.js";
import { useCacheDir } from "../helpers/env.js";

// One thread: tests share 2 cores with builds, and llama.cpp's spinning threads degrade badly there.
let engine: Engine;
let dir: string;
let tinyPath: string;
let tiny: LoadedModel;

beforeAll(async () => {
    dir = tempDir("engine");
    tinyPath = await makeTinyModel(dir);
    engine = await createEngine({ gpu: "cpu", threads: 1 });
    tiny = await engine.loadModel(tinyPath);
});

afterAll(async () => {
    await engine?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe("engine basics", () => {
    it("reports backend, threads and model info; defaults threads to the physical cores it may use", async () => {
        expect(engine.backend).toBe("cpu");
        expect(engine.threads).toBe(1);
        expect(tiny.info).toMatchObject({ backend: "cpu", gpuLayers: 0, totalLayers: 3, trainContextSize: 512 });
        expect(tiny.info.sizeBytes).toBe(fs.statSync(tinyPath).size);
        expect(tiny.eosToken).toBeTypeOf("number");
        const other = await createEngine({ gpu: "cpu" });
        expect(other.threads).toBe(defaultThreadCount());
        await other.dispose();
    });

    it("says once on stderr, naming the file, when the engine helper cannot be loaded, and generates without it", async () => {
        const saved = process.env.AUTOACT_ENGINE_HELPER;
        const missing = path.join(dir, "no-such-helper.node");
        const lines: string[] = [];
        const write = process.stderr.write.bind(process.stderr);
        process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof process.stderr.write;
        try {
            process.env.AUTOACT_ENGINE_HELPER = missing;
            resetEngineHelperForTests();
            const plain = await createEngine({ gpu: "cpu", threads: 1 });
            const again = await createEngine({ gpu: "cpu", threads: 1 });
            expect(plain.helper).toBeUndefined();
            const model = await plain.loadModel(tinyPath);
            const generator = await model.createGenerator({ parallel: 1, contextSize: 64 });
            const [result] = await generator.generate([{ prompt: "hello", maxTokens: 3, temperature: 0 }]);
            expect(result!.tokens.length).toBeGreaterThan(0);
            expect(generator.backendName).toBe("node-llama-cpp");
            await generator.dispose();
            await again.dispose();
            await plain.dispose();
        } finally {
            process.stderr.write = write;
            if (saved == null)
                delete process.env.AUTOACT_ENGINE_HELPER;
            else
                process.env.AUTOACT_ENGINE_HELPER = saved;
            resetEngineHelperForTests();
        }
        const warnings = lines.filter((l) => l.includes("engine helper"));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(`engine helper unavailable (${missing} is not built)`);
    });

    it.skipIf(process.platform === "darwin")("an explicit backend it does not have here is refused, not run on the CPU in its name", async () => {
        await expect(createEngine({ gpu: "metal", threads: 1 })).rejects.toThrow(RuntimeFailure);
        await expect(createEngine({ gpu: "metal", threads: 1 })).rejects.toThrow("cannot start llama.cpp with gpu=metal: it runs on cpu here; --gpu auto takes what is there");
    });

    it("tokenizes and detokenizes", () => {
        const tokens = tiny.tokenize("hello world");
        expect(tokens.length).toBeGreaterThan(0);
        expect(tiny.detokenize(tokens)).toBe("hello world");
    });

    it("rejects a missing file, a corrupt GGUF and a truncated GGUF with one-line InputErrors", async () => {
        const missing = path.join(dir, "missing.gguf");
        await expect(engine.loadModel(missing)).rejects.toThrow(InputError);
        await expect(engine.loadModel(missing)).rejects.toThrow(/not found: .*missing\.gguf/);

        const garbage = path.join(dir, "garbage.gguf");
        fs.writeFileSync(garbage, Buffer.from("not a gguf file at all, just text".repeat(4)));
        await expect(engine.loadModel(garbage)).rejects.toThrow(/not a GGUF file .*garbage\.gguf/);

        const badHeader = path.join(dir, "bad-header.gguf");
        const header = Buffer.alloc(64);
        header.write("GGUF", 0, "latin1");
        header.writeUInt32LE(3, 4);
        header.writeBigUInt64LE(1n << 40n, 8);
        fs.writeFileSync(badHeader, header);
        await expect(engine.loadModel(badHeader)).rejects.toThrow(/corrupt GGUF header.*bad-header\.gguf/);

        const truncated = path.join(dir, "truncated.gguf");
        const bytes = fs.readFileSync(tinyPath);
        fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.8)));
        const error = await engine.loadModel(truncated).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InputError);
        expect((error as Error).message).toMatch(/truncated\.gguf/);
        expect((error as Error).message).not.toContain("\n");
    });

    it("fails fast and clearly for an uncached hf: URI without network", async () => {
        const cache = tempDir("cache");
        const restoreCache = useCacheDir(cache);
        const started = Date.now();
        try {
            const error = await engine.loadModel("hf:nobody-autoact/none-GGUF/none.Q8_0.gguf").catch((e: unknown) => e);
            expect(error).toBeInstanceOf(RuntimeFailure);
            const message = (error as Error).message;
            expect(message).toContain("hf:nobody-autoact/none-GGUF/none.Q8_0.gguf");
            expect(message).toContain(path.join(cache, "models"));
            expect(Date.now() - started).toBeLessThan(30_000);
        } finally {
            restoreCache();
            fs.rmSync(cache, { recursive: true, force: true });
        }
    }, 60_000);
});

/** Generation tests, on the synthetic model and (when present) on stories260K. */
function generationSuite(name: string, getModel: () => LoadedModel, prompts: string[]) {
    describe(`generation on ${name}`, () => {
        it("greedy generation is deterministic", async () => {
            const generator = await getModel().createGenerator({ contextSize: 256 });
            const a = await generator.complete({ prompt: prompts[0]!, maxTokens: 32 });
            const b = await generator.complete({ prompt: prompts[0]!, maxTokens: 32 });
            const fresh = await getModel().createGenerator({ contextSize: 256 });
            const c = await fresh.complete({ prompt: prompts[0]!, maxTokens: 32 });
            expect(a.generatedTokens).toBeGreaterThan(0);
            expect(b.tokens).toEqual(a.tokens);
            expect(c.tokens).toEqual(a.tokens);
            expect(a.text).toBe(getModel().detokenize(a.tokens));
            await generator.dispose();
            await fresh.dispose();
        });

        it("N parallel requests at temperature 0 equal one-at-a-time runs", async () => {
            const requests: GenerationRequest[] = prompts.map((prompt, i) => ({ prompt, maxTokens: 24 + 8 * i }));
            const single = await getModel().createGenerator({ parallel: 1, contextSize: 256 });
            const sequential = [];
            for (const request of requests)
                sequential.push(await single.complete(request));
            const parallel = await getModel().createGenerator({ parallel: 4, contextSize: 256 });
            const seen: number[] = [];
            const results = await parallel.generate([...requests, ...requests], { onResult: (i) => seen.push(i) });
            expect(seen.sort((x, y) => x - y)).toEqual([...Array(requests.length * 2).keys()]);
            for (let i = 0; i < requests.length; i++) {
                expect(results[i]!.tokens).toEqual(sequential[i]!.tokens);
                expect(results[i + requests.length]!.tokens).toEqual(sequential[i]!.tokens);
                expect(results[i]!.promptTokens).toBe(sequential[i]!.promptTokens);
            }
            expect(parallel.stats.generatedTokens).toBe(results.reduce((sum, r) => sum + r.generatedTokens, 0));
            await single.dispose();
            await parallel.dispose();
        });

        it("cuts stop strings, reports stop reasons, and repeats seeded sampling", async () => {
            const generator = await getModel().createGenerator({ parallel: 2, contextSize: 256 });
            const full = await generator.complete({ prompt: prompts[1]!, maxTokens: 40 });
            expect(full.stopReason).toBe("maxTokens");
            expect(full.generatedTokens).toBe(40);
            // Stop at a piece of the greedy text that starts after its first character.
            const stop = full.text.slice(5, 7);
            const cut = await generator.complete({ prompt: prompts[1]!, maxTokens: 40, stop: [stop] });
            expect(cut.stopReason).toBe("stop");
            expect(cut.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
            expect(cut.text).not.toContain(stop);

            const sampled = { prompt: prompts[2]!, maxTokens: 24, temperature: 1, topK: 40, topP: 0.95 };
            const [s1, s2] = await generator.generate([{ ...sampled, seed: 11 }, { ...sampled, seed: 11 }]);
            const s3 = await generator.complete({ ...sampled, seed: 11 });
            expect(s2!.tokens).toEqual(s1!.tokens);
            expect(s3.tokens).toEqual(s1!.tokens);
            const others = await generator.generate([1, 2, 3, 4].map((seed) => ({ ...sampled, seed })));
            expect(others.some((r) => JSON.stringify(r.tokens) !== JSON.stringify(s1!.tokens))).toBe(true);

            const tooLong = await generator.complete({ prompt: Array(300).fill(getModel().tokenize("a")[0]!), maxTokens: 4 });
            expect(tooLong.stopReason).toBe("contextFull");
            const nearlyFull = await generator.complete({ prompt: Array(250).fill(getModel().tokenize("a")[0]!), maxTokens: 100 });
            expect(["contextFull", "eos"]).toContain(nearlyFull.stopReason);
            expect(nearlyFull.generatedTokens).toBeLessThanOrEqual(7);
            await generator.dispose();
        });

        it("a sampled request depends only on its own seed, not on what ran before it in the process (issue 11)", async () => {
            const sampled = (seed: number, prompt: string) => ({ prompt, maxTokens: 32, temperature: 0.9, topK: 40, topP: 0.95, seed });
            const requests = prompts.map((prompt, i) => sampled(100 + i, prompt));
            const oneByOne = async (generator: Generator) => {
                const tokens = [];
                for (const request of requests)
                    tokens.push((await generator.complete(request)).tokens);
                return tokens;
            };
            // A fresh generator: the reference.
            const fresh = await getModel().createGenerator({ parallel: 2, contextSize: 256 });
            const reference = await oneByOne(fresh);
            // A warm one: other sampled and greedy requests ran first (KV prefixes kept, samplers
            // used), then the same requests in reverse order, some sharing those prefixes.
            const warm = await getModel().createGenerator({ parallel: 2, contextSize: 256 });
            await warm.generate([...prompts.map((p, i) => sampled(7 + i, `${p} and more`)), { prompt: prompts[0]!, maxTokens: 30 }]);
            requests.reverse();
            const again = (await oneByOne(warm)).reverse();
            requests.reverse();
            expect(again).toEqual(reference);
            // Seeds alone decide: a different seed gives a different sample somewhere.
            const reseeded = await fresh.generate(requests.map((r) => ({ ...r, seed: r.seed + 1 })));
            expect(reseeded.some((r, i) => JSON.stringify(r.tokens) !== JSON.stringify(reference[i]))).toBe(true);
            await fresh.dispose();
            await warm.dispose();
        });

        it("grammar-constrained requests always match the grammar (GBNF and JSON schema)", async () => {
            const generator = await getModel().createGenerator({ parallel: 4, contextSize: 256 });
            const gbnf = 'root ::= "answer: " ("yes" | "no" | [0-9]{1,3}) "."';
            const gbnfResults = await generator.generate([0, 1, 2, 3, 4, 5].map((seed) => ({
                prompt: prompts[seed % prompts.length]!, maxTokens: 20, temperature: 1.5, seed, grammar: { gbnf }
            })));
            for (const result of gbnfResults) {
                expect(result.text).toMatch(/^answer: (yes|no|[0-9]{1,3})\.$/);
                expect(result.stopReason).toBe("eos");
            }
            const schema = {
                type: "object",
                // Bounded so that even a random model must finish within maxTokens.
                properties: { name: { type: "string", maxLength: 6 }, count: { enum: [1, 2, 3] }, done: { type: "boolean" } },
                required: ["name", "count", "done"]
            };
            const jsonResults = await generator.generate([0, 1, 2, 3].map((seed) => ({
                prompt: prompts[seed % prompts.length]!, maxTokens: 120, temperature: 0.8, seed, grammar: { jsonSchema: schema }
            })));
            for (const result of jsonResults) {
                expect(result.stopReason).toBe("eos");
                const value = JSON.parse(result.text) as Record<string, unknown>;
                expect(Object.keys(value).sort()).toEqual(["count", "done", "name"]);
                expect(typeof value.name).toBe("string");
                expect([1, 2, 3]).toContain(value.count);
                expect(typeof value.done).toBe("boolean");
            }
            await expect(generator.complete({ prompt: prompts[0]!, grammar: { gbnf: "root ::= (" } })).rejects.toThrow(InputError);
            await generator.dispose();
        });

        it("reuses the KV prefix of a trajectory's previous turn and still matches a fresh run", async () => {
            const generator = await getModel().createGenerator({ parallel: 2, contextSize: 256 });
            const first = await generator.complete({ prompt: prompts[0]!, maxTokens: 16 });
            const turn2 = `${prompts[0]!}${first.text} And then`;
            const reusedBefore = generator.stats.reusedTokens;
            const second = await generator.complete({ prompt: turn2, maxTokens: 16 });
            expect(generator.stats.reusedTokens - reusedBefore).toBeGreaterThanOrEqual(first.promptTokens);
            const fresh = await getModel().createGenerator({ contextSize: 256 });
            const expected = await fresh.complete({ prompt: turn2, maxTokens: 16 });
            expect(second.tokens).toEqual(expected.tokens);
            await generator.dispose();
            await fresh.dispose();
        });

        it("the engine helper (persistent threadpool, main-thread steps) gives node-llama-cpp's own results, sampled ones too", async () => {
            // Built by the tests' setup (autoact native build-engine) on Linux; elsewhere the engine runs without it.
            if (process.platform === "linux")
                expect(engine.helper).toBeDefined();
            const plainEngine = await createEngine({ gpu: "cpu", threads: 1, helper: false });
            expect(plainEngine.helper).toBeUndefined();
            const plainModel = await plainEngine.loadModel(getModel().path);
            // A prompt longer than one main-thread step (64 tokens) also takes the worker path.
            const long = Array.from({ length: 30 }, () => prompts[1]!).join(" ");
            const requests: GenerationRequest[] = [
                ...prompts.map((prompt) => ({ prompt, maxTokens: 24 })),
                { prompt: long, maxTokens: 24 },
                { prompt: prompts[2]!, maxTokens: 24, temperature: 0.9, topK: 40, topP: 0.95, seed: 11 },
                { prompt: prompts[0]!, maxTokens: 24, grammar: { gbnf: 'root ::= "yes" | "no"' } }
            ];
            const fast = await getModel().createGenerator({ parallel: 3, contextSize: 512 });
            const plain = await plainModel.createGenerator({ parallel: 3, contextSize: 512 });
            expect(fast.accelerated).toBe(engine.helper != null);
            expect(plain.accelerated).toBe(false);
            const [a, b] = [await fast.generate(requests), await plain.generate(requests)];
            expect(getModel().tokenize(long).length).toBeGreaterThan(64);
            expect(a.map((r) => r.tokens)).toEqual(b.map((r) => r.tokens));
            expect(["yes", "no"]).toContain(a[a.length - 1]!.text);
            await fast.dispose();
            await plain.dispose();
            await plainEngine.dispose();
        });

        it("scores tokens: log-probabilities, `from` slices, chunked long inputs", async () => {
            const model = getModel();
            const generator = await model.createGenerator({ contextSize: 512 });
            const result = await generator.complete({ prompt: prompts[0]!, maxTokens: 12 });
            await generator.dispose();
            const tokens = [...model.promptTokens(prompts[0]!), ...result.tokens];
            const scores = await model.scoreTokens(tokens);
            expect(scores).toHaveLength(tokens.length - 1);
            for (const s of scores)
                expect(s).toBeLessThanOrEqual(0);
            const tail = await model.scoreTokens(tokens, { from: tokens.length - 12 });
            expect(tail).toHaveLength(12);
            tail.forEach((s, i) => expect(s).toBeCloseTo(scores[scores.length - 12 + i]!, 4));
            // Greedy tokens are the most likely ones: each at least as likely as a shuffled token there.
            const shuffled = [...tokens.slice(0, tokens.length - 12), ...result.tokens.map((t) => (t + 1) % 256)];
            const worse = await model.scoreTokens(shuffled, { from: tokens.length - 12 });
            tail.forEach((s, i) => expect(s).toBeGreaterThanOrEqual(worse[i]! - 1e-4));
            // Longer than one 512-token batch: the first chunk's scores equal the short run's
            // (up to float rounding: a 512-token batch takes other matmul kernels than a short one).
            const long = Array.from({ length: 600 }, (_, i) => tokens[i % tokens.length]!);
            const longScores = await model.scoreTokens(long);
            expect(longScores).toHaveLength(599);
            longScores.slice(0, tokens.length - 1).forEach((s, i) => expect(s).toBeCloseTo(scores[i]!, 2));
        });
    });
}

generationSuite("a synthetic tiny llama", () => tiny, ["hello there", "the quick brown fox", "once upon a time", "tools: search"]);

describe.skipIf(!hasSharedModel)("stories260K", () => {
    let stories: LoadedModel;
    beforeAll(async () => {
        stories = await engine.loadModel(sharedModel);
    });
    generationSuite("stories260K", () => stories, ["Once upon a time", "The cat", "Lily went to the park", "One day, a little"]);
});

describe("LoRA adapters and sub-agent contexts", () => {
    it("an adapter with zero B, or scale 0, leaves outputs equal to the base; a real one changes them", async () => {
        const zeroB = await writeLoraAdapter({ out: path.join(dir, "zero-b.gguf"), nEmbd: 64, layers: 2, bStd: 0 });
        const strong = await writeLoraAdapter({ out: path.join(dir, "strong.gguf"), nEmbd: 64, layers: 2, bStd: 2, seed: 5 });
        const request = { prompt: "the quick brown fox", maxTokens: 24 };
        const base = await tiny.createGenerator({ contextSize: 128 });
        const withZeroB = await tiny.createGenerator({ contextSize: 128, adapters: [{ filePath: zeroB }] });
        const scaleZero = await tiny.createGenerator({ contextSize: 128, adapters: [{ filePath: strong, scale: 0 }] });
        const withStrong = await tiny.createGenerator({ contextSize: 128, adapters: [{ filePath: strong, scale: 1 }] });
        const [b, z, s0, s1] = await Promise.all([base, withZeroB, scaleZero, withStrong].map((g) => g.complete(request)));
        expect(z!.tokens).toEqual(b!.tokens);
        expect(s0!.tokens).toEqual(b!.tokens);
        expect(s1!.tokens).not.toEqual(b!.tokens);

        const tokens = tiny.promptTokens("the quick brown fox jumps over the lazy dog");
        const baseScores = await tiny.scoreTokens(tokens);
        const zeroScores = await tiny.scoreTokens(tokens, { adapters: [{ filePath: zeroB }] });
        const strongScores = await tiny.scoreTokens(tokens, { adapters: [{ filePath: strong }] });
        zeroScores.forEach((s, i) => expect(s).toBeCloseTo(baseScores[i]!, 5));
        expect(strongScores.some((s, i) => Math.abs(s - baseScores[i]!) > 1e-3)).toBe(true);
        for (const g of [base, withZeroB, scaleZero, withStrong])
            await g.dispose();
    });

    it("rejects a bad adapter file with an InputError instead of crashing", async () => {
        const notAdapter = path.join(dir, "not-adapter.gguf");
        fs.copyFileSync(tinyPath, notAdapter);
        await expect(tiny.createGenerator({ adapters: [{ filePath: notAdapter }] })).rejects.toThrow(/not a LoRA adapter.*not-adapter\.gguf/);
        const otherArch = await writeLoraAdapter({ out: path.join(dir, "qwen-adapter.gguf"), nEmbd: 64, layers: 2, bStd: 0, arch: "qwen2" });
        await expect(tiny.createGenerator({ adapters: [{ filePath: otherArch }] })).rejects.toThrow(/made for architecture qwen2, the base is llama/);
        // made for another base of the same architecture: the tensor that does not fit is named
        const narrower = await writeLoraAdapter({ out: path.join(dir, "narrower.gguf"), nEmbd: 32, layers: 2, bStd: 0 });
        const narrowError = await tiny.createGenerator({ adapters: [{ filePath: narrower }] }).catch((e: unknown) => e);
        expect(narrowError).toBeInstanceOf(InputError);
        expect((narrowError as Error).message).toMatch(/narrower\.gguf: tensor blk\.0\.attn_q\.weight\.lora_a \[32, 4\] does not fit blk\.0\.attn_q\.weight \[64, 64\]/);
        const deeper = await writeLoraAdapter({ out: path.join(dir, "deeper.gguf"), nEmbd: 64, layers: 3, bStd: 0 });
        await expect(tiny.scoreTokens([1, 2, 3], { adapters: [{ filePath: deeper }] })).rejects.toThrow(/adapts blk\.2\.attn_q\.weight, which the base model does not have/);
        await expect(tiny.createGenerator({ adapters: [{ filePath: path.join(dir, "nope.gguf") }] })).rejects.toThrow(InputError);
    });

    it("loads the weights once: 3 adapter contexts on one model cost far less memory than the model", async () => {
        // Large enough (~100 MB) that the allocator's RSS noise (tens of MiB) cannot pass for a second copy.
        const bigPath = await makeTinyModel(dir, { nEmbd: 512, layers: 8, ff: 1536, vocab: 4096 });
        const big = await engine.loadModel(bigPath);
        const adapters = await Promise.all([1, 2, 3].map((seed) =>
            writeLoraAdapter({ out: path.join(dir, `sub-${seed}.gguf`), nEmbd: 512, layers: 8, bStd: 0.1, seed })));
        const request = { prompt: "hello", maxTokens: 4 };
        const first = await big.createGenerator({ contextSize: 128, adapters: [{ filePath: adapters[0]! }] });
        await first.complete(request);
        // Native memory only: the V8 heap grows and shrinks with garbage collection.
        const nativeRss = () => process.memoryUsage().rss - process.memoryUsage().heapTotal;
        const rssOne = nativeRss();
        const more = [];
        for (const adapter of adapters.slice(1)) {
            const generator = await big.createGenerator({ contextSize: 128, adapters: [{ filePath: adapter }] });
            await generator.complete(request);
            more.push(generator);
        }
        const rssThree = nativeRss();
        const modelBytes = big.info.sizeBytes;
        console.log(`RSS outside the JS heap: 1 adapter context ${(rssOne / 2 ** 20).toFixed(1)} MiB, 3 contexts ${(rssThree / 2 ** 20).toFixed(1)} MiB, model ${(modelBytes / 2 ** 20).toFixed(1)} MiB`);
        expect(rssThree - rssOne).toBeLessThan(modelBytes * 0.5);
        for (const g of [first, ...more])
            await g.dispose();
        await big.dispose();
    });
});
