import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LlamaContext } from "node-llama-cpp";
import { gitState, watchLoad } from "../../src/bench/fingerprint.js";
import {
    benchInfer, benchTrain, resultStem, validateBenchResult, writeBenchResult, writeZeroLoraAdapter, type BenchResult
} from "../../src/bench/index.js";
import { readTable } from "../../src/data/table-io.js";
import { LoadedModel } from "../../src/llm/engine.js";
import { ensureNativeBuild, nativeSourceStamp, type NativeBuild } from "../../src/train/native-build.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot, packageVersion } from "../../src/util/package.js";
import { makeTinyModel, tempDir } from "./helpers.js";
import { useCacheDir } from "../helpers/env.js";

let dir: string;
let model: string;
let adapter: string;
let build: NativeBuild;
let restoreCache: () => void;

beforeAll(async () => {
    dir = tempDir("infer");
    // hashes and zero: adapters go to the test's folder, not the home cache
    restoreCache = useCacheDir(path.join(dir, "cache"));
    model = await makeTinyModel(dir);
    adapter = await writeZeroLoraAdapter({ model, out: path.join(dir, "zero.lora.gguf"), rank: 4 });
    // llama-bench and autoact-train come from the project's native build (incremental: a no-op when built)
    build = await ensureNativeBuild({ jobs: 2 });
});

afterAll(() => {
    restoreCache();
    fs.rmSync(dir, { recursive: true, force: true });
});

// One thread: two spinning threads on a shared 2-core machine make each token wait for a time slice.
const small = { gpu: "cpu" as const, threads: 1, pp: 16, tg: 8, reps: 2 };

describe("bench infer", () => {
    let result: BenchResult;

    it("measures pp, tg, parallel sequences and LoRA contexts and writes a result that passes its schema", async () => {
        result = await benchInfer({ ...small, model, parallel: [1, 2], lora: [adapter], command: "test" });
        expect(result.tests.map((t) => t.name)).toEqual(["pp16", "tg8", "tg8@1", "tg8@2", "pp16+lora1", "tg8+lora1", "pp16+lora3", "tg8+lora3"]);
        for (const t of result.tests) {
            expect(t.samples).toHaveLength(2);
            expect(t.mean).toBeGreaterThan(0);
            expect(t.peak_rss_bytes).toBeGreaterThan(0);
        }
        expect(result.tests.find((t) => t.name === "tg8@2")?.parallel).toBe(2);
        expect(result.tests.find((t) => t.name === "tg8+lora3")?.lora_adapters).toBe(3);
        expect(result.fingerprint.model.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(result.fingerprint.model.params).toBe(115008);
        expect(result.fingerprint.threads).toBe(1);
        expect(result.fingerprint.backend).toBe("cpu");
        expect(result.fingerprint.node_llama_cpp_version).toBe("3.21.1");
        expect(result.ratio_pp).toBeNull();
        // The pipeline's generator with the synth stage's sampling and a stop string, on its decode backend.
        expect(result.settings.decode_backend).toBe(process.platform === "linux" ? "helper" : "node-llama-cpp");
        expect(result.settings.gpu_layers).toEqual({ offloaded: 0, total: 3 });
        // a test's peak RSS is the process's so far: the notes say so
        expect(result.notes).toContainEqual(expect.stringMatching(/^peak_rss_bytes of each test is the process's peak so far \(maxRSS\): it includes the model load and every earlier test/));
        expect(result.settings.sampling).toMatchObject({ temperature: 0.9, stop: ["\nObservation:"], ignoreEos: true });

        const files = await writeBenchResult(result, { dir: path.join(dir, "results") });
        expect(path.basename(files.json)).toBe(`${resultStem(result)}.json`);
        expect(path.basename(files.json)).toMatch(/^\d{4}-\d{2}-\d{2}-amd-epyc-2c-tiny-infer\.json$|^\d{4}-\d{2}-\d{2}-.+-tiny-infer\.json$/);
        const parsed = JSON.parse(fs.readFileSync(files.json, "utf8")) as unknown;
        expect(validateBenchResult(parsed)).toEqual([]);
        const rows = await readTable(files.arrow, "bench_results");
        expect(rows).toHaveLength(8);
        expect(rows[0]).toMatchObject({ kind: "infer", engine: "autoact", test: "pp16", pp: 16, tg: null, threads: 1, command: "test" });

        // a second run the same day gets its own file
        const again = await writeBenchResult(result, { dir: path.join(dir, "results") });
        expect(again.json).not.toBe(files.json);
        // an exact --out path is never overwritten either, and must be a *.json the report reads
        await expect(writeBenchResult(result, { out: files.json })).rejects.toThrow(/the file exists; a result never overwrites an older run/);
        await expect(writeBenchResult(result, { out: path.join(dir, "run.txt") })).rejects.toThrow(/must end in \.json/);
    });

    it("rejects results that lack fields or have the wrong types", () => {
        const broken = JSON.parse(JSON.stringify(result)) as Record<string, any>;
        delete broken.fingerprint.model.sha256;
        broken.tests[0].mean = "fast";
        broken.kind = "sprint";
        const problems = validateBenchResult(broken);
        expect(problems).toContain("result.kind: expected one of infer, train");
        expect(problems).toContain("result.fingerprint.model.sha256: missing");
        expect(problems).toContain("result.tests[0].mean: expected a finite number");
        const ratioless = { ...JSON.parse(JSON.stringify(result)), llama_bench: { binary: "b", command: "c", tests: [] } };
        expect(validateBenchResult(ratioless)).toContain("result: ratio_pp and ratio_tg must be set when llama_bench ran");
        expect(validateBenchResult(null)).toEqual(["result: expected an object"]);
    });

    it("runs llama-bench from the native build with the same sizes and records ratio_pp and ratio_tg", async () => {
        const compared = await benchInfer({ ...small, model, parallel: [1], compareLlamaBench: true, llamaBench: build.llamaBench });
        expect(compared.llama_bench?.tests.map((t) => t.name)).toEqual(["pp16", "tg8"]);
        // one llama-bench repetition after each of autoact's, of the same test
        expect(compared.llama_bench?.command).toContain("-p 16 -n 8 -r 1");
        expect(compared.llama_bench?.command).toContain("alternating with autoact's repetitions");
        expect(compared.llama_bench?.tests.map((t) => t.samples.length)).toEqual([2, 2]);
        expect(compared.llama_bench?.command).toContain("-t 1");
        expect(compared.ratio_pp).toBeGreaterThan(0);
        expect(compared.ratio_tg).toBeGreaterThan(0);
        const pp = compared.tests.find((t) => t.name === "pp16")!;
        expect(compared.ratio_pp).toBeCloseTo(pp.mean / compared.llama_bench!.tests[0]!.mean, 10);
        expect(compared.fingerprint.llama_cpp_commit).toMatch(/^[0-9a-f]+$/);
        // llama-bench is the native build: the same tag with the project's patches, listed from its stamp
        expect(compared.llama_bench?.patches).toEqual(nativeSourceStamp()!.patches.map((p) => p.name));
        expect(compared.llama_bench?.patches).toContain("0010-ggml-cpu-tinyblas-register-tile.patch");
        expect(compared.fingerprint.native_build).toEqual({ tag: nativeSourceStamp()!.tag, patches: nativeSourceStamp()!.patches });
        // and the autoact code that ran
        expect(compared.fingerprint.autoact_version).toBe(packageVersion());
        expect(compared.fingerprint.git_commit).toMatch(/^[0-9a-f]{40}$/);
        expect(typeof compared.fingerprint.git_dirty).toBe("boolean");
        expect(await gitState(dir)).toEqual({ git_commit: null, git_dirty: null });
        expect(validateBenchResult(JSON.parse(JSON.stringify(compared)))).toEqual([]);
        const files = await writeBenchResult(compared, { out: path.join(dir, "compared.json") });
        const rows = await readTable(files.arrow, "bench_results");
        expect(rows.filter((r) => r.engine === "llama-bench")).toHaveLength(2);
        expect(rows.find((r) => r.engine === "autoact" && r.test === "tg8")?.ratio_llama_bench).toBeCloseTo(compared.ratio_tg!, 10);
    });

    it("runs llama-bench alone with --engine llama-bench (machines without a node-llama-cpp binary for the backend)", async () => {
        const only = await benchInfer({ ...small, model, engine: "llama-bench", llamaBench: build.llamaBench });
        expect(only.tests.map((t) => `${t.engine}:${t.name}`)).toEqual(["llama-bench:pp16", "llama-bench:tg8"]);
        expect(only.llama_bench).toBeNull();
        expect(only.ratio_tg).toBeNull();
        expect(only.fingerprint.build).toBe("source Release (autoact native build)");
        expect(validateBenchResult(JSON.parse(JSON.stringify(only)))).toEqual([]);
        await expect(benchInfer({ ...small, gpu: "auto", model, engine: "llama-bench" })).rejects.toThrow(/--engine llama-bench needs an explicit --gpu/);
    });

    describe("the contexts it measures", () => {
        /** Every context the run creates: what the bench asked for and what node-llama-cpp made. */
        const contextsOf = async (run: () => Promise<unknown>) => {
            const spy = vi.spyOn(LoadedModel.prototype as unknown as { createContext: (o: { sequences: number; batchSize: number }) => Promise<LlamaContext> }, "createContext");
            try {
                await run();
                return await Promise.all(spy.mock.calls.map(async ([asked], i) => ({ asked, context: await (spy.mock.results[i]!.value as Promise<LlamaContext>) })));
            } finally {
                spy.mockRestore();
            }
        };

        it("runs autoact's contexts with the flash attention llama-bench gets (-fa), not node-llama-cpp's auto", async () => {
            for (const flashAttention of [true, false]) {
                const contexts = await contextsOf(() => benchInfer({ ...small, model, pp: 4, tg: 4, reps: 1, parallel: [1, 2], flashAttention }));
                expect(contexts).toHaveLength(3);
                for (const { context } of contexts)
                    expect(context.flashAttention).toBe(flashAttention);
            }
        });

        it("decodes tg@N's N sequences in one batch even when --pp is smaller than N", async () => {
            const contexts = await contextsOf(() => benchInfer({ ...small, model, pp: 2, tg: 4, reps: 1, parallel: [1, 4] }));
            const four = contexts.find((c) => c.asked.sequences === 4)!;
            expect(four.asked.batchSize).toBeGreaterThanOrEqual(4);
            expect(four.context.batchSize).toBeGreaterThanOrEqual(4);
        });
    });

    it("reads load_avg.before when the command starts, before its own setup (resolving, synthesizing the model) loads the machine", async () => {
        // the load "rises" once the benchmark reads its model option: setup has begun
        let setupStarted = false;
        const loadavg = vi.spyOn(os, "loadavg").mockImplementation(() => [setupStarted ? 7 : 0.5, 0, 0]);
        try {
            const startingSetup = <T extends object>(options: T) =>
                Object.defineProperty(options, "model", { enumerable: true, get: () => { setupStarted = true; return model; } }) as T & { model: string };
            const inferred = await benchInfer(startingSetup({ ...small, pp: 2, tg: 2, reps: 1, parallel: [1] }));
            setupStarted = false;
            const trained = await benchTrain(startingSetup({ gpu: "cpu" as const, threads: 1, ctx: 16, steps: 2, reps: 1, rank: 2, trainer: build.trainer, llamaBench: build.llamaBench }));
            for (const result of [inferred, trained])
                expect(result.load_avg).toEqual({ before: 0.5, after: 7 });
        } finally {
            loadavg.mockRestore();
        }
    });

    it("notes the load when measuring started after a setup of more than 10 s", () => {
        vi.useFakeTimers();
        try {
            const quick = watchLoad();
            quick.measuring();
            const slow = watchLoad();
            vi.advanceTimersByTime(11_000);
            slow.measuring();
            expect(quick.finish().notes.filter((n) => n.startsWith("setup"))).toEqual([]);
            expect(slow.finish().notes).toContainEqual(expect.stringMatching(/^setup \(model, native build\) took 11 s: the load was [\d.]+ when measuring started \(load_avg\.before, [\d.]+, is the command's start\)\.$/));
        } finally {
            vi.useRealTimers();
        }
    });

    it("fails fast with one-line input errors", async () => {
        await expect(benchInfer({ ...small, model: path.join(dir, "missing.gguf") })).rejects.toThrow(InputError);
        await expect(benchInfer({ ...small, model: path.join(dir, "missing.gguf") })).rejects.toThrow(/model not found: .*missing\.gguf/);
        await expect(benchInfer({ ...small, model, parallel: [0] })).rejects.toThrow(/--parallel 0: sequence counts must be positive integers/);
        await expect(benchInfer({ ...small, model, gpu: "tpu" as never })).rejects.toThrow(/unknown backend "tpu" for --gpu/);
        await expect(benchInfer({ ...small, model, lora: [model] })).rejects.toThrow(/not a LoRA adapter GGUF/);
    });
});

describe("bench train", () => {
    it("reads the trainer's progress into tokens/s and peak memory", async () => {
        const result = await benchTrain({ model, gpu: "cpu", threads: 1, ctx: 32, steps: 3, rank: 4, trainer: build.trainer, command: "test" });
        expect(validateBenchResult(JSON.parse(JSON.stringify(result)))).toEqual([]);
        const t = result.tests[0]!;
        expect(t.engine).toBe("autoact-train");
        expect(t.samples).toHaveLength(2); // steps 2 and 3; step 1 is the warm-up
        expect(t.mean).toBeGreaterThan(0);
        expect(t.peak_rss_bytes).toBeGreaterThan(0);
        expect(t.peak_vram_bytes).toBeNull();
        expect(result.settings).toMatchObject({ rank: 4, ctx: 32, steps: 3, flops_per_token: 4 * 115008 });
        const files = await writeBenchResult(result, { dir: path.join(dir, "results") });
        expect(files.json).toMatch(/-tiny-train\.json$/);
    });

    it("rejects bad options before running anything", async () => {
        await expect(benchTrain({ model, gpu: "tpu" as never })).rejects.toThrow(/unknown backend "tpu"/);
        await expect(benchTrain({ model, steps: 1 })).rejects.toThrow(/--steps must be at least 2/);
        await expect(benchTrain({ model, targets: ["attn_z"] })).rejects.toThrow(/--targets has "attn_z": expected any of attn_q/);
    });
});

const cli = path.join(packageRoot, "dist", "src", "cli", "main.js");
const built = fs.existsSync(cli);
if (!built)
    console.warn(`skipping bench CLI tests: ${cli} is not built (run npx tsc -p tsconfig.json)`);

describe.skipIf(!built)("autoact bench (CLI)", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, "bench", ...args], {
        encoding: "utf8", env: { ...process.env, NO_COLOR: "1", AUTOACT_CACHE: path.join(dir, "cache") }
    });

    it.each([
        [["infer", "--model", "/nonexistent/model.gguf"], /^autoact: model file not found: \/nonexistent\/model\.gguf$/],
        [["infer", "--model", "MODEL", "--parallel", "0"], /^autoact: --parallel 0: sequence counts must be positive integers/],
        [["infer", "--model", "MODEL", "--parallel", "1,x"], /^autoact: --parallel x: expected integers/],
        [["infer", "--model", "MODEL", "--gpu", "tpu"], /^autoact: unknown backend "tpu" for --gpu/],
        [["infer", "--model", "MODEL", "--lora", "zero:x"], /^autoact: --lora zero:x: expected zero:RANK with a positive integer rank$/],
        [["train", "--model", "MODEL", "--gpu", "tpu"], /^autoact: unknown backend "tpu" for --gpu/],
        [["train", "--model", "MODEL", "--batch-tokens", "-1"], /^autoact: --batch-tokens must be a whole number from 0 to \d+, got -1$/],
        [["train", "--model", "MODEL", "--mixed-precision", "fp8"], /^autoact: --mixed-precision must be one of auto \| on \| off, got "fp8"$/],
        [["train", "--model", "MODEL", "--torch-dtype", "f64"], /^autoact: --torch-dtype must be one of f32 \| bf16, got "f64"$/],
        [["report", "--in", "/nonexistent/results"], /^autoact: results folder not found: \/nonexistent\/results$/],
        [["infer", "--model", "MODEL", "--out", "run.txt"], /^autoact: --out run\.txt: a result file must end in \.json/],
        [["infer", "--model", "MODEL", "--out", "EXISTING"], /^autoact: --out .*old\.json: the file exists; a result never overwrites an older run/],
        [["train", "--model", "MODEL", "--out", "EXISTING"], /^autoact: --out .*old\.json: the file exists/]
    ])("bad input %j: exit 2 and one line", (args, pattern) => {
        const existing = path.join(dir, "old.json");
        fs.writeFileSync(existing, "{}\n");
        const result = run(...args.map((a) => (a === "MODEL" ? model : a === "EXISTING" ? existing : a)));
        expect(fs.readFileSync(existing, "utf8")).toBe("{}\n");
        expect(result.status).toBe(2);
        const lines = result.stderr.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(pattern);
    });

    it("runs end to end and prints where the result went", () => {
        const out = path.join(dir, "cli", "run.json");
        const result = run("infer", "--model", model, "--gpu", "cpu", "--threads", "1", "--pp", "8", "--tg", "4", "--reps", "2", "--parallel", "2", "--lora", "zero:2", "--out", out);
        expect(result.stderr).toContain("bench: tg4@2");
        expect(result.status, result.stderr).toBe(0);
        expect(result.stdout).toContain(`wrote ${out}`);
        const parsed = JSON.parse(fs.readFileSync(out, "utf8")) as BenchResult;
        expect(validateBenchResult(parsed)).toEqual([]);
        expect(parsed.command).toMatch(/^autoact bench infer --model .* --parallel 2 --lora zero:2 --out /);
        expect(parsed.tests.map((t) => t.name)).toContain("tg4+lora3");
        expect(fs.existsSync(out.replace(/\.json$/, ".arrow"))).toBe(true);
    });
});
