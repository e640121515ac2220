import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { benchTrain, validateBenchResult, writeBenchResult, type BenchResult } from "../../src/bench/index.js";
import { findTorchPython, runTorchReference } from "../../src/bench/torch-reference.js";
import { readTable } from "../../src/data/table-io.js";
import { ggufDecoderShape, readGgufInfo } from "../../src/gguf/reader.js";
import { ensureNativeBuild, type NativeBuild } from "../../src/train/native-build.js";
import { packageRoot } from "../../src/util/package.js";
import { makeTinyModel, tempDir } from "./helpers.js";
import { useCacheDir } from "../helpers/env.js";

const stories260K = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const hasStories = fs.existsSync(stories260K);
if (!hasStories)
    console.warn(`skipping the stories260K training benchmark: ${stories260K} is absent`);
const torch = await findTorchPython("cpu");
if ("skipped" in torch)
    console.warn(`skipping the PyTorch reference tests: ${torch.skipped}`);
const hasTorch = !("skipped" in torch);

/** stories260K's shape, as its GGUF states it (../shared/README.md). */
const storiesShape = {
    arch: "llama", nEmbd: 64, layers: 5, heads: 8, kvHeads: 4, ff: 172, vocab: 512, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: false, qkvBias: false
};
/** LoRA parameters of rank 4 on attn_q and attn_v of that shape: per layer r x (64 + 64) + r x (64 + 32). */
const storiesLoraParams = 5 * (4 * 128 + 4 * 96);

let dir: string;
let build: NativeBuild;
let restoreCache: () => void;
beforeAll(async () => {
    dir = tempDir("train");
    restoreCache = useCacheDir(path.join(dir, "cache"));
    build = await ensureNativeBuild({ jobs: 2 });
}, 45 * 60_000);
afterAll(() => {
    restoreCache();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasStories)("the decoder shape of a GGUF", () => {
    it("reads stories260K's shape for the PyTorch reference", async () => {
        expect(ggufDecoderShape(await readGgufInfo(stories260K))).toMatchObject({ ...storiesShape, normEps: expect.any(Number) });
    });
});

describe.skipIf(!hasTorch)("bench/reference/torch_lora.py", () => {
    it("trains a LoRA of stories260K's shape and reports tokens/s as JSON", async () => {
        const run = await runTorchReference({
            python: (torch as { python: string }).python, shape: storiesShape, rank: 4, alpha: 8, dropout: 0.05, targets: ["attn_q", "attn_v"],
            ctx: 32, batch: 2, steps: 3, threads: 1, device: "cpu", dtype: "f32", lr: 1e-3, seed: 1
        });
        expect(run.report).toMatchObject({ device: "cpu", dtype: "f32", lora_params: storiesLoraParams, threads: 1 });
        expect(run.report.lora).toMatch(/^(plain|peft )/);
        expect(run.test).toMatchObject({ engine: "pytorch", pp: 32, reps: 2, unit: "tokens/s" });
        expect(run.test.samples).toHaveLength(2);
        expect(run.test.mean).toBeGreaterThan(0);
        expect(Number.isFinite(run.report.first_loss) && Number.isFinite(run.report.last_loss)).toBe(true);
        // random frozen weights over 512 tokens: the loss starts near ln(512)
        expect(Math.abs(run.report.first_loss - Math.log(512))).toBeLessThan(1);
        expect(run.command).toMatch(/torch_lora\.py --n-embd 64 --layers 5 --heads 8 --kv-heads 4 --ff 172 --vocab 512 /);
    });
});

describe("bench train beside llama-bench and PyTorch", () => {
    it.skipIf(!hasStories)("writes ratio_train_to_pp (and ratio_torch where torch imports) on stories260K", async () => {
        const progress: string[] = [];
        const result = await benchTrain({
            model: stories260K, gpu: "cpu", threads: 1, ctx: 64, steps: 3, batch: 2, rank: 4, targets: ["attn_q", "attn_v"], reps: 2,
            compareTorch: true, trainer: build.trainer, llamaBench: build.llamaBench, command: "test", onProgress: (m) => progress.push(m)
        });
        expect(validateBenchResult(JSON.parse(JSON.stringify(result)))).toEqual([]);
        expect(result.tests[0]).toMatchObject({ engine: "autoact-train", pp: 64, reps: 2 });
        expect(result.llama_bench!.tests.map((t) => t.name)).toEqual(["pp64"]);
        expect(result.llama_bench!.command).toMatch(/-p 64 -n 0 -r 2 -b 64 -ub 64 .*-ngl 0/);
        expect(result.ratio_train_to_pp).toBeCloseTo(result.tests[0]!.mean / result.llama_bench!.tests[0]!.mean, 10);
        expect(result.settings).toMatchObject({ batch: 2, ctx: 64, rank: 4, lora_params: storiesLoraParams });
        if (hasTorch) {
            expect(result.torch).toMatchObject({ device: "cpu", dtype: "f32", lora_params: result.settings.lora_params });
            expect(result.ratio_torch).toBeCloseTo(result.tests[0]!.mean / result.torch!.tests[0]!.mean, 10);
        } else {
            expect(result.torch).toBeNull();
            expect(progress.join("\n")).toMatch(/PyTorch reference skipped/);
        }

        const files = await writeBenchResult(result, { dir: path.join(dir, "results") });
        const saved = JSON.parse(fs.readFileSync(files.json, "utf8")) as BenchResult;
        expect(saved.ratio_train_to_pp).toBe(result.ratio_train_to_pp);
        const rows = await readTable(files.arrow, "bench_results");
        const trainRow = rows.find((r) => r.engine === "autoact-train")!;
        expect(trainRow.ratio_train_to_pp).toBe(result.ratio_train_to_pp);
        expect(trainRow.ratio_torch).toBe(result.ratio_torch ?? null);
        expect(rows.map((r) => r.engine).sort()).toEqual(hasTorch ? ["autoact-train", "llama-bench", "pytorch"] : ["autoact-train", "llama-bench"]);
    });

    it.skipIf(!hasStories)("rounds: the tests pool every round's samples and each ratio is the median of the rounds' ratios", async () => {
        const result = await benchTrain({
            model: stories260K, gpu: "cpu", threads: 1, ctx: 64, steps: 3, batch: 2, rank: 4, targets: ["attn_q", "attn_v"], reps: 1, rounds: 3,
            compareTorch: true, trainer: build.trainer, llamaBench: build.llamaBench, command: "test"
        });
        // every round runs the reference (or finds it absent): its note is written once
        expect(result.notes.filter((n) => n.startsWith("PyTorch reference"))).toHaveLength(1);
        expect(validateBenchResult(JSON.parse(JSON.stringify(result)))).toEqual([]);
        expect(result.settings).toMatchObject({ rounds: 3 });
        expect(result.tests[0]).toMatchObject({ engine: "autoact-train", reps: 6 }); // 2 timed steps per round
        expect(result.llama_bench!.tests[0]!.samples).toHaveLength(3);
        const note = result.notes.find((n) => n.startsWith("3 rounds"))!;
        const ratios = /ratio_train_to_pp ([\d.]+), ([\d.]+), ([\d.]+)/.exec(note)!.slice(1).map(Number).sort((a, b) => a - b);
        expect(result.ratio_train_to_pp).toBeCloseTo(ratios[1]!, 3);
    });

    it.skipIf(!hasTorch)("a PyTorch reference that fails in a later round leaves the trainer's figures and no comparison", async () => {
        const model = await makeTinyModel(dir);
        // torch's Python, whose second torch_lora.py run fails (out of memory, say)
        const python = path.join(dir, "flaky-python");
        const count = path.join(dir, "flaky-count");
        fs.writeFileSync(python, `#!/bin/sh\ncase "$1" in *torch_lora.py) echo x >> ${count}; [ "$(wc -l < ${count})" -ge 2 ] && { echo "CUDA out of memory" >&2; exit 1; };; esac\nexec ${(torch as { python: string }).python} "$@"\n`, { mode: 0o755 });
        const result = await benchTrain({
            model, gpu: "cpu", threads: 1, ctx: 32, steps: 2, batch: 1, rank: 4, reps: 1, rounds: 2, compareTorch: true, python,
            trainer: build.trainer, llamaBench: build.llamaBench, command: "test"
        });
        expect(result.torch).toBeNull();
        expect(result.ratio_torch).toBeNull();
        expect(result.tests[0]).toMatchObject({ engine: "autoact-train", reps: 2 });
        expect(result.notes.some((n) => n.startsWith("PyTorch reference failed, no ratio_torch") && n.includes("CUDA out of memory"))).toBe(true);
        expect(validateBenchResult(JSON.parse(JSON.stringify(result)))).toEqual([]);
    });

    it("skips the PyTorch reference with one line where no Python imports torch, keeping the trainer's figures", async () => {
        const model = await makeTinyModel(dir);
        const progress: string[] = [];
        const result = await benchTrain({
            model, gpu: "cpu", threads: 1, ctx: 32, steps: 2, batch: 1, rank: 4, reps: 1, compareTorch: true, python: path.join(dir, "no-python"),
            trainer: build.trainer, llamaBench: build.llamaBench, trainerArgs: ["--frozen-backward", "matmul"], command: "test", onProgress: (m) => progress.push(m)
        });
        // the trainer's own flags reach it and the result says what it ran
        expect(result.settings).toMatchObject({ trainer_args: ["--frozen-backward", "matmul"], frozen_backward: "matmul" });
        expect(progress.filter((m) => m.includes("PyTorch"))).toEqual([
            `PyTorch reference skipped: no Python here imports torch (tried ${path.join(dir, "no-python")}; on Debian: apt-get install python3-torch)`
        ]);
        expect(result.torch).toBeNull();
        expect(result.ratio_torch).toBeNull();
        expect(result.ratio_train_to_pp).toBeGreaterThan(0);
        expect(result.notes.some((n) => n.startsWith("PyTorch reference skipped"))).toBe(true);
        expect(validateBenchResult(JSON.parse(JSON.stringify(result)))).toEqual([]);
    });

    it("records what the trainer chose for the memory it had, once for all rounds", async () => {
        const model = await makeTinyModel(dir);
        const result = await benchTrain({
            model, gpu: "cpu", threads: 1, ctx: 32, steps: 2, batch: 1, rank: 4, reps: 1, rounds: 2,
            // every activation kept: the copies' ways only (1 MiB holds neither, so the last is allocated as it is)
            trainer: build.trainer, llamaBench: build.llamaBench, trainerArgs: ["--memory-available", "1", "--recompute", "off"], command: "test"
        });
        expect(result.settings).toMatchObject({ frozen_backward: "matmul", recompute: false, recomputed_layers: 0 });
        // the first training graph, measured beside copies made once, is declined: the copies are
        // made in each pass instead, noted once for both rounds
        expect(result.notes.filter((n) => n.startsWith("autoact-train: "))).toEqual([
            expect.stringMatching(/would not fit in the 0\.00 GiB of memory available: the frozen weights' copies are made in each pass instead/)
        ]);
    });
});
