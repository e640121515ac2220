import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LlamaModel } from "node-llama-cpp";
import { metadataValue, readGgufInfo, readTensorValues } from "../../src/gguf/reader.js";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import type { TokenizedSample } from "../../src/train/index.js";
import {
    BUILD_TIMEOUT_MS, hasStories, loadModel, nativeBuild, responseNll, runTrainer, samplesFile, stepLosses, stories260K,
    tempDir, textSample, tinyModel, tokenLogProbs
} from "./helpers.js";

const STORIES = [
    ["Once upon a time there was a little girl.", " She liked to play with her red ball in the park."],
    ["Tom had a big dog.", " The dog was called Max and he loved to run fast."],
    ["One day the sun was hot.", " Lily and Ben went to the lake to swim with the fish."],
    ["The cat sat on the mat.", " It was happy and warm and it went to sleep."]
] as const;

async function adapterValues(file: string): Promise<Map<string, Float32Array>> {
    const info = await readGgufInfo(file);
    const out = new Map<string, Float32Array>();
    for (const t of info.tensors)
        out.set(t.name, await readTensorValues(info, t.name));
    return out;
}

describe("autoact-train on a synthetic tiny llama (F32)", () => {
    let dir: string;
    let base: string;
    let data: string;

    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-tiny");
        base = await tinyModel(dir);
        // token ids < 256 are byte tokens of the synthetic vocabulary
        const samples: TokenizedSample[] = Array.from({ length: 6 }, (_, s) => {
            const tokens = Array.from({ length: 24 }, (_, i) => 40 + ((s * 7 + i * 3) % 60));
            return { tokens, mask: tokens.map((_, i) => (i >= 10 ? 1 : 0)) };
        });
        data = await samplesFile(dir, samples);
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("Done-when 1: gradients of lora_a and lora_b match central finite differences (rel. error < 1e-2)", async () => {
        const run = await runTrainer(["--base", base, "--data", data, "--out", path.join(dir, "gc.gguf"), "--grad-check", "28",
            "--rank", "4", "--ctx", "64"]);
        expect(run.exitCode, run.stderr).toBe(0);
        const checks = run.events.filter((e) => e.event === "grad_check");
        expect(checks.length).toBe(28);
        expect(checks.some((c) => String(c.tensor).endsWith(".lora_a"))).toBe(true);
        expect(checks.some((c) => String(c.tensor).endsWith(".lora_b"))).toBe(true);
        // every target module of both layers is covered
        for (const module of ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"])
            expect(checks.some((c) => String(c.tensor).includes(`.${module}.`)), module).toBe(true);
        for (const c of checks) {
            expect(Math.abs(c.analytic), `${c.tensor}[${c.index}] has a zero gradient`).toBeGreaterThan(1e-6);
            expect(c.rel_error, `${c.tensor}[${c.index}]: analytic ${c.analytic} numeric ${c.numeric}`).toBeLessThan(1e-2);
        }
    });

    it("Done-when 5: N steps + interrupt + resume gives the adapter of the same steps straight", async () => {
        // enough steps that the trainer cannot finish before SIGINT arrives (a step takes ~1 ms here)
        const common = ["--base", base, "--data", data, "--steps", "200", "--lr", "1e-3", "--ctx", "64", "--seed", "7"];
        const straight = path.join(dir, "straight.gguf");
        const a = await runTrainer([...common, "--out", straight]);
        expect(a.exitCode, a.stderr).toBe(0);

        const resumed = path.join(dir, "resumed.gguf");
        let killed = false;
        const b1 = await runTrainer([...common, "--out", resumed], {
            onEvent: (e, kill) => {
                if (e.event === "step" && e.step === 6 && !killed) {
                    killed = true;
                    kill();
                }
            }
        });
        expect(b1.exitCode).toBe(130);
        expect(fs.existsSync(resumed)).toBe(false);
        const stoppedAt = b1.events.find((e) => e.event === "interrupted")!.step as number;
        expect(stoppedAt).toBeGreaterThanOrEqual(6);
        expect(stoppedAt).toBeLessThan(200);
        const b2 = await runTrainer([...common, "--out", resumed, "--resume"]);
        expect(b2.exitCode, b2.stderr).toBe(0);
        expect(b2.events.find((e) => e.event === "start")!.start_step).toBe(stoppedAt);
        expect(stepLosses(b2)).toEqual(stepLosses(a).slice(stoppedAt));

        const x = await adapterValues(straight);
        const y = await adapterValues(resumed);
        expect([...y.keys()].sort()).toEqual([...x.keys()].sort());
        for (const [name, values] of x) {
            const other = y.get(name)!;
            let maxDiff = 0;
            for (let i = 0; i < values.length; i++)
                maxDiff = Math.max(maxDiff, Math.abs(values[i]! - other[i]!));
            expect(maxDiff, name).toBeLessThan(1e-6);
        }
    });

    it("warm-up then linear decay; held-out eval loss every N steps; the same seed repeats the run exactly", async () => {
        const args = ["--base", base, "--data", data, "--steps", "6", "--lr", "1e-2", "--warmup", "2", "--schedule", "linear",
            "--eval-fraction", "0.34", "--eval-every", "2", "--ctx", "64"];
        const a = await runTrainer([...args, "--out", path.join(dir, "sched-a.gguf")]);
        expect(a.exitCode, a.stderr).toBe(0);
        expect(a.events[0]).toMatchObject({ event: "start", n_train: 4, n_eval: 2, total_steps: 6 });
        const steps = a.events.filter((e) => e.event === "step");
        const lrs = steps.map((e) => e.lr as number);
        // warm-up 0.005, 0.01; then linear over the 4 remaining steps: 1, 3/4, 1/2, 1/4 of the peak
        const expected = [0.005, 0.01, 0.01, 0.0075, 0.005, 0.0025];
        lrs.forEach((lr, i) => expect(lr).toBeCloseTo(expected[i]!, 7));
        expect(steps.map((e) => e.eval_loss != null)).toEqual([false, true, false, true, false, true]);
        expect(steps[5]!.eval_loss).toBeLessThan(steps[1]!.eval_loss);

        const b = await runTrainer([...args, "--out", path.join(dir, "sched-b.gguf")]);
        expect(stepLosses(b)).toEqual(stepLosses(a));
        expect(fs.readFileSync(path.join(dir, "sched-b.gguf"))).toEqual(fs.readFileSync(path.join(dir, "sched-a.gguf")));
        const c = await runTrainer([...args, "--seed", "8", "--out", path.join(dir, "sched-c.gguf")]);
        expect(stepLosses(c)).not.toEqual(stepLosses(a));
    });

    it("gradient accumulation: 2 micro-batches of 1 sample make the same step as 1 micro-batch of 2", async () => {
        const common = ["--base", base, "--data", data, "--steps", "3", "--lr", "1e-2", "--ctx", "64"];
        const a = await runTrainer([...common, "--batch", "2", "--out", path.join(dir, "acc-a.gguf")]);
        const b = await runTrainer([...common, "--grad-accum", "2", "--out", path.join(dir, "acc-b.gguf")]);
        expect(a.exitCode, a.stderr).toBe(0);
        expect(b.exitCode, b.stderr).toBe(0);
        expect(stepLosses(b)).toEqual(stepLosses(a));
        // 24 tokens a sample, the last fed is the one predicting the final response token
        expect(a.events.find((e) => e.event === "step")!.tokens).toBe(2 * 23);
    });

    it("a hang-up (a closed terminal, a lost ssh session) checkpoints as an interrupt does; the resumed run tells step 1's loss", async () => {
        const out = path.join(dir, "hup.gguf");
        const args = ["--base", base, "--data", data, "--out", out, "--steps", "200", "--lr", "1e-3", "--ctx", "64"];
        const hung = await runTrainer(args, { onEvent: (e, kill) => e.event === "step" && e.step === 3 && kill("SIGHUP") });
        expect(hung.exitCode, hung.stderr).toBe(130);
        expect(hung.events.some((e) => e.event === "interrupted")).toBe(true);
        expect(fs.existsSync(`${out}.ckpt`)).toBe(true);
        const resumed = await runTrainer([...args, "--resume"]);
        expect(resumed.exitCode, resumed.stderr).toBe(0);
        expect(resumed.events.find((e) => e.event === "done")!.first_loss).toBe(stepLosses(hung)[0]);
    });

    it("stops on a NaN/Inf loss with a clear error, keeps the last good checkpoint and writes no adapter", async () => {
        const out = path.join(dir, "nan.gguf");
        const run = await runTrainer(["--base", base, "--data", data, "--out", out, "--steps", "20", "--lr", "1e30",
            "--grad-clip", "0", "--ctx", "64"]);
        expect(run.exitCode).toBe(3);
        expect(run.stderr).toMatch(/(NaN|Inf|not finite).*step \d+/);
        expect(fs.existsSync(out)).toBe(false);
        expect(fs.existsSync(`${out}.ckpt`)).toBe(true);
    });
});

describe("Done-when 7: bad input fails clearly, non-zero, with no adapter", () => {
    let dir: string;
    let base: string;
    let data: string;
    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-bad");
        base = await tinyModel(dir);
        data = await samplesFile(dir, [{ tokens: [40, 41, 42, 43, 44, 45], mask: [0, 0, 0, 1, 1, 1] }]);
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    const expectInputError = async (args: string[], message: RegExp) => {
        const out = path.join(dir, "out.gguf");
        const run = await runTrainer([...args, "--out", out]);
        expect(run.exitCode).toBe(2);
        expect(run.stderr).toMatch(message);
        expect(run.events.at(-1)).toMatchObject({ event: "error", kind: "input" });
        expect(fs.existsSync(out)).toBe(false);
    };

    it("missing base", async () => {
        await expectInputError(["--base", path.join(dir, "nope.gguf"), "--data", data], /base model not found: .*nope\.gguf/);
    });
    it("an adapter of another architecture", async () => {
        const qwen = await tinyModel(dir, { preset: "tiny-chat" });
        const foreign = path.join(dir, "qwen-adapter.gguf");
        const init = await runTrainer(["--base", qwen, "--out", foreign, "--init-only"]);
        expect(init.exitCode, init.stderr).toBe(0);
        await expectInputError(["--base", base, "--data", data, "--adapter-in", foreign], /architecture 'qwen2' does not match the base model's 'llama'/);
    });
    it("an --adapter-in with a rank, alpha or targets of its own; a checkpoint of a run that started elsewhere", async () => {
        const given = path.join(dir, "rank4.gguf");
        const init = await runTrainer(["--base", base, "--out", given, "--init-only", "--rank", "4", "--alpha", "8", "--targets", "attn_k,ffn_up"]);
        expect(init.exitCode, init.stderr).toBe(0);
        await expectInputError(["--base", base, "--data", data, "--adapter-in", given, "--rank", "8"], /--rank 8: the adapter .*rank4\.gguf \(--adapter-in\) has rank 4/);
        await expectInputError(["--base", base, "--data", data, "--adapter-in", given, "--alpha", "16"], /has alpha 8,/);
        await expectInputError(["--base", base, "--data", data, "--adapter-in", given, "--targets", "attn_k"], /has targets attn_k,ffn_up,/);
        // the same values, in another order, are no contradiction; unnamed ones come from the adapter
        const out = path.join(dir, "further.gguf");
        const run = await runTrainer(["--base", base, "--data", data, "--adapter-in", given, "--targets", "ffn_up,attn_k", "--rank", "4",
            "--out", out, "--steps", "1", "--ctx", "64", "--checkpoint-every", "1"]);
        expect(run.exitCode, run.stderr).toBe(0);
        expect(run.events.find((e) => e.event === "start")).toMatchObject({ rank: 4, alpha: 8, targets: ["attn_k", "ffn_up"] });
        const config = JSON.parse(String(metadataValue(await readGgufInfo(out), "autoact.train_config")));
        expect(config).toMatchObject({ rank: 4, alpha: 8, targets: ["attn_k", "ffn_up"] });
        // its checkpoint resumes only a run that starts from the same adapter
        const fresh = await runTrainer(["--base", base, "--data", data, "--out", out, "--steps", "1", "--ctx", "64", "--rank", "4",
            "--alpha", "8", "--targets", "attn_k,ffn_up", "--resume"]);
        expect(fresh.exitCode).toBe(2);
        expect(fresh.stderr).toMatch(/the checkpoint was made with start=adapter [0-9a-f]{16}, this run has start=fresh/);
    });
    it("an empty dataset", async () => {
        await expectInputError(["--base", base, "--data", await samplesFile(dir, [], "empty.bin")], /the dataset is empty/);
    });
    it("a sample longer than the context", async () => {
        const long = await samplesFile(dir, [{ tokens: Array(100).fill(50), mask: Array(100).fill(1) }], "long.bin");
        await expectInputError(["--base", base, "--data", long, "--ctx", "64"], /sample 0 has 100 tokens, more than the context length 64/);
    });
    it("an unknown target module", async () => {
        await expectInputError(["--base", base, "--data", data, "--targets", "attn_q,attn_qkv"], /unknown target module 'attn_qkv'/);
    });
});

describe("Done-when 6: quantized and qwen2 bases train", () => {
    let dir: string;
    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-quant");
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    for (const [preset, type] of [["tiny", "q8_0"], ["tiny", "q4_0"], ["tiny256", "q4_k"], ["tiny-chat", "f16"]] as const) {
        it(`${preset} ${type}: the loss falls`, async () => {
            // Q4_K blocks are 256 wide: its base needs rows of 256
            const base = preset === "tiny256"
                ? (await writeSyntheticModel({ arch: "llama", nEmbd: 256, layers: 1, heads: 4, ff: 256, vocab: 320, type, out: path.join(dir, "q4k.gguf") })).path
                : await tinyModel(dir, { preset, type });
            const samples = Array.from({ length: 4 }, (_, s) => {
                const tokens = Array.from({ length: 20 }, (_, i) => 60 + ((s * 5 + i * 11) % 50));
                return { tokens, mask: tokens.map((_, i) => (i >= 6 ? 1 : 0)) };
            });
            const data = await samplesFile(dir, samples, `${preset}-${type}.bin`);
            const run = await runTrainer(["--base", base, "--data", data, "--out", path.join(dir, `${preset}-${type}.gguf`),
                "--steps", "40", "--lr", "1e-2", "--batch", "4", "--schedule", "constant", "--ctx", "64"]);
            expect(run.exitCode, run.stderr).toBe(0);
            const losses = stepLosses(run);
            expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
        });
    }
});

describe.skipIf(!hasStories)("on stories260K (real weights) through node-llama-cpp", () => {
    let dir: string;
    let model: LlamaModel;
    let samples: TokenizedSample[];

    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-stories");
        model = await loadModel(stories260K);
        samples = STORIES.map(([prompt, response]) => textSample(model, prompt, response));
    }, BUILD_TIMEOUT_MS);
    afterAll(async () => {
        await model?.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("Done-when 2: a fresh adapter (B = 0) leaves node-llama-cpp's outputs identical to the base's", async () => {
        const adapter = path.join(dir, "fresh.gguf");
        const run = await runTrainer(["--base", stories260K, "--out", adapter, "--init-only", "--agent", "plan"]);
        expect(run.exitCode, run.stderr).toBe(0);
        const info = await readGgufInfo(adapter);
        expect(metadataValue(info, "general.type")).toBe("adapter");
        expect(metadataValue(info, "adapter.type")).toBe("lora");
        expect(metadataValue(info, "general.architecture")).toBe("llama");
        expect(metadataValue(info, "autoact.agent")).toBe("plan");
        expect(JSON.parse(String(metadataValue(info, "autoact.train_config"))).rank).toBe(8);
        expect(info.tensors.length).toBe(5 * 7 * 2);
        const base = await tokenLogProbs(model, samples[0]!.tokens);
        const withAdapter = await tokenLogProbs(model, samples[0]!.tokens, adapter);
        expect(withAdapter).toEqual(base);
    });

    it("Done-when 4: the loss before the first update is node-llama-cpp's mean response NLL; trailing tokens change nothing", async () => {
        const sample = samples[1]!;
        const expected = await responseNll(model, sample);
        const first = async (s: TokenizedSample, name: string) => {
            const run = await runTrainer(["--base", stories260K, "--data", await samplesFile(dir, [s], `${name}.bin`),
                "--out", path.join(dir, `${name}.gguf`), "--steps", "1", "--ctx", "128"]);
            expect(run.exitCode, run.stderr).toBe(0);
            return stepLosses(run)[0]!;
        };
        const loss = await first(sample, "nll");
        expect(Math.abs(loss - expected)).toBeLessThan(1e-3);
        // padding and a following sample's prompt after the response, unmasked
        const other = samples[2]!;
        const padded = { tokens: [...sample.tokens, 0, 0, 0, ...other.tokens], mask: [...sample.mask, 0, 0, 0, ...other.tokens.map(() => 0)] };
        expect(await first(padded, "padded")).toBe(loss);
    });

    it("Done-when 3: rank 8 on attention and FFN halves the loss within 200 steps; node-llama-cpp sees a lower perplexity", async () => {
        const adapter = path.join(dir, "learned.gguf");
        const run = await runTrainer(["--base", stories260K, "--data", await samplesFile(dir, samples, "stories.bin"),
            "--out", adapter, "--steps", "200", "--rank", "8", "--lr", "1e-2", "--warmup", "10", "--ctx", "128", "--agent", "plan"]);
        expect(run.exitCode, run.stderr).toBe(0);
        const losses = stepLosses(run);
        expect(losses.length).toBe(200);
        const head = losses.slice(0, 4).reduce((a, b) => a + b) / 4; // one pass over the 4 samples
        const tail = losses.slice(-4).reduce((a, b) => a + b) / 4;
        expect(tail).toBeLessThan(head / 2);

        let baseNll = 0;
        let adaptedNll = 0;
        for (const s of samples) {
            baseNll += await responseNll(model, s);
            adaptedNll += await responseNll(model, s, adapter);
        }
        expect(Math.exp(adaptedNll / samples.length)).toBeLessThan(Math.exp(baseNll / samples.length));

        // The trainer's forward through a non-zero B (its rank-8 products take the short inner
        // dimension kernel of patch 0004) gives node-llama-cpp's NLL with the same adapter.
        const sample = samples[1]!;
        const again = await runTrainer(["--base", stories260K, "--data", await samplesFile(dir, [sample], "again.bin"),
            "--adapter-in", adapter, "--out", path.join(dir, "again.gguf"), "--steps", "1", "--lr", "0", "--ctx", "128"]);
        expect(again.exitCode, again.stderr).toBe(0);
        expect(Math.abs(stepLosses(again)[0]! - await responseNll(model, sample, adapter))).toBeLessThan(1e-3);
    });
});
