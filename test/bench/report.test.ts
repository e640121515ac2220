import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { barChart, lineChart, renderBenchReport, validateBenchResult, type BenchResult } from "../../src/bench/index.js";
import { fixtureResult, fixtureTest, tempDir } from "./helpers.js";

/** Well-formed XML as far as SVG needs: every tag closed in order, attributes quoted. */
function checkWellFormed(svg: string): void {
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    const stack: string[] = [];
    for (const match of svg.matchAll(/<(\/?)([a-zA-Z]+)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/g)) {
        const [, closing, name, , selfClosing] = match;
        if (selfClosing)
            continue;
        if (closing)
            expect(stack.pop()).toBe(name);
        else
            stack.push(name!);
    }
    expect(stack).toEqual([]);
    // no raw ampersands or stray angle brackets in text
    expect(svg.replace(/<[^>]*>/g, "")).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;)/);
}

let dir: string;
const results = path.join("results");

const cpuInfer = fixtureResult({
    kind: "infer", machine: "AMD EPYC 2c", backend: "cpu", model: "synth-100m-q8_0", timestamp: "2026-11-27T10:00:00.000Z",
    tests: [
        fixtureTest("pp512", { pp: 512, mean: 400 }),
        fixtureTest("tg128", { tg: 128, mean: 50 }),
        fixtureTest("tg128@1", { tg: 128, mean: 50 }),
        fixtureTest("tg128@8", { tg: 128, parallel: 8, mean: 210 }),
        fixtureTest("pp512+lora1", { pp: 512, lora_adapters: 1, mean: 360 }),
        fixtureTest("tg128+lora1", { tg: 128, lora_adapters: 1, mean: 45 }),
        fixtureTest("pp512+lora3", { pp: 512, lora_adapters: 3, mean: 350 }),
        fixtureTest("tg128+lora3", { tg: 128, lora_adapters: 3, mean: 40 })
    ],
    llamaBench: [fixtureTest("pp512", { pp: 512, mean: 410, engine: "llama-bench" }), fixtureTest("tg128", { tg: 128, mean: 52, engine: "llama-bench" })]
});
// a result that records the code that ran (older ones, as the fixtures above, do not)
cpuInfer.fingerprint = {
    ...cpuInfer.fingerprint, autoact_version: "0.1.0", git_commit: "0123456789abcdef0123456789abcdef01234567", git_dirty: true,
    native_build: { tag: "v0.4.0", patches: [{ name: "0004-ggml-cpu-short-inner-matmul.patch", sha256: "b".repeat(64) }] }
};
cpuInfer.llama_bench!.patches = ["0004-ggml-cpu-short-inner-matmul.patch"];
const gpuInfer = fixtureResult({
    kind: "infer", machine: "NVIDIA H200 <&>", backend: "cuda", gpu: "NVIDIA H200", model: "synth-1.5b-f16", timestamp: "2026-11-27T11:00:00.000Z",
    tests: [
        fixtureTest("pp512", { pp: 512, mean: 52_000 }),
        fixtureTest("tg128", { tg: 128, mean: 310 }),
        ...[1, 2, 4, 8, 16, 32].map((n) => fixtureTest(`tg128@${n}`, { tg: 128, parallel: n, mean: 310 * n ** 0.8 }))
    ]
});
const gpuLlamaBenchOnly = fixtureResult({
    kind: "infer", machine: "NVIDIA H100", backend: "cuda", gpu: "NVIDIA H100 80GB HBM3", model: "synth-0.5b-q8_0", timestamp: "2026-11-27T12:00:00.000Z",
    tests: [fixtureTest("pp512", { pp: 512, mean: 90_000, engine: "llama-bench" }), fixtureTest("tg128", { tg: 128, mean: 600, engine: "llama-bench" })]
});
const cpuTrain: BenchResult = {
    ...fixtureResult({
        kind: "train", machine: "AMD EPYC 2c", backend: "cpu", model: "stories260K", timestamp: "2026-11-27T10:30:00.000Z",
        tests: [fixtureTest("train-r8-ctx256", { engine: "autoact-train", pp: 256, lora_adapters: 1, mean: 2500 })],
        llamaBench: [fixtureTest("pp256", { engine: "llama-bench", pp: 256, mean: 10_000 })],
        settings: { rank: 8, ctx: 256, batch: 8, flops_per_token: 4 * 292_800, input_grad_type: "bf16", forward_bf16: true }
    }),
    torch: {
        command: "python3 bench/reference/torch_lora.py", version: "1.13.1", lora: "plain", device: "cpu", dtype: "f32", lora_params: 8960,
        tests: [fixtureTest("train-r8-ctx256", { engine: "pytorch", pp: 256, lora_adapters: 1, mean: 1000 })]
    },
    ratio_train_to_pp: 0.25,
    ratio_torch: 2.5
};
const gpuTrain = fixtureResult({
    kind: "train", machine: "NVIDIA H200", backend: "cuda", gpu: "NVIDIA H200", model: "synth-0.5b-f32", timestamp: "2026-11-27T11:30:00.000Z",
    tests: [fixtureTest("train-r8-ctx256", { engine: "autoact-train", pp: 256, lora_adapters: 1, mean: 9000, peak_vram_bytes: 6 * 2 ** 30 })],
    settings: { rank: 8, ctx: 256, flops_per_token: 4 * 494_000_000 }
});

beforeAll(() => {
    dir = tempDir("report");
    fs.mkdirSync(path.join(dir, results));
    const fixtures: [string, BenchResult][] = [
        ["2026-11-27-amd-epyc-2c-synth-100m-q8_0-infer.json", cpuInfer],
        ["2026-11-27-nvidia-h200-synth-1.5b-f16-infer.json", gpuInfer],
        ["2026-11-27-nvidia-h100-synth-0.5b-q8_0-infer.json", gpuLlamaBenchOnly],
        ["2026-11-27-amd-epyc-2c-stories260k-train.json", cpuTrain],
        ["2026-11-27-nvidia-h200-synth-0.5b-f32-train.json", gpuTrain]
    ];
    for (const [name, result] of fixtures) {
        expect(validateBenchResult(result)).toEqual([]);
        fs.writeFileSync(path.join(dir, results, name), JSON.stringify(result));
    }
    fs.writeFileSync(path.join(dir, results, "broken.json"), JSON.stringify({ schema: "autoact.bench/1", kind: "infer" }));
    fs.writeFileSync(path.join(dir, results, "notes.txt"), "not a result");
    fs.writeFileSync(path.join(dir, results, "engine-speed.json"), JSON.stringify({ bench: "engine-speed", rows: [] }));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("bench report", () => {
    it("renders the tables and charts from fixture results", async () => {
        const out = path.join(dir, "REPORT.md");
        const report = await renderBenchReport({ inDir: path.join(dir, results), out });
        expect(report.results).toBe(5);
        expect(report.skipped).toHaveLength(1);
        expect(report.skipped[0]).toMatch(/broken\.json: result\.timestamp: missing/);
        const md = fs.readFileSync(out, "utf8");

        // machines, with GPU and VRAM
        expect(md).toMatch(/\| NVIDIA H200 <&> \| Fixture CPU \| 16 \| 16 \| 128 GiB \| NVIDIA H200 \| 80 GiB \| 580\.1 \| cuda \| node-llama-cpp prebuilt \|/);
        // the code that ran: version, commit (dirty) and the native build's patch set; "-" for older results
        expect(md).toMatch(/\| AMD EPYC 2c \| .* \| 0\.1\.0 @ 012345678 \(dirty\), - \| v0\.4\.0 \+ 1 patches #[0-9a-f]{8}, - \|/);
        expect(md).toMatch(/\| NVIDIA H200 <&> \| .* \| - \| - \|\n/);
        expect(md).toContain("with the project's patches applied");
        // inference: autoact beside llama-bench with the ratios
        expect(md).toContain("| AMD EPYC 2c | cpu | synth-100m-q8_0 | MOSTLY_Q8_0 | 100.0M | 16 | pp512 400 ± 8.00 | 410 ± 8.20 | 0.98 | tg128 50.0 ± 1.00 | 52.0 ± 1.04 | 0.96 |");
        // a llama-bench-only run fills the llama-bench columns
        expect(md).toMatch(/\| NVIDIA H100 \| cuda \| synth-0\.5b-q8_0 \| .* \| - \| 90\.0k ± 1800 \| - \| - \| 600 ± 12\.0 \| - \|/);
        // parallel sequences: one column per count seen, and the best against one sequence
        expect(md).toMatch(/\| machine \| backend \| model \| 1 seq \| 2 seq \| 4 seq \| 8 seq \| 16 seq \| 32 seq \| best \/ 1 seq \|/);
        expect(md).toMatch(/\| AMD EPYC 2c \| cpu \| synth-100m-q8_0 \| 50\.0 ± 1\.00 \| - \| - \| 210 ± 4\.20 \| - \| - \| 4\.20x \|/);
        expect(md).toMatch(/\| NVIDIA H200 <&> \| cuda \| synth-1\.5b-f16 \| 310 ± 6\.20 \|.*\| 16\.00x \|/);
        // what each memory figure is
        expect(md).toContain("| peak RSS (whole run) |");
        expect(md).toContain("torch.cuda.max_memory_allocated, tensors only, so not comparable");
        // LoRA cost
        expect(md).toContain("| AMD EPYC 2c | cpu | synth-100m-q8_0 | 400 ± 8.00 | 360 ± 7.20 | 350 ± 7.00 | 50.0 ± 1.00 | 45.0 ± 0.900 | 40.0 ± 0.800 | 300 MiB |");
        // training, with GFLOP/s from 4 x params and peak VRAM
        expect(md).toMatch(/\| NVIDIA H200 \| cuda \| synth-0\.5b-f32 \| MOSTLY_Q8_0 \| - \| 100\.0M \| 8 \| 256 \| 1 \| 16 \| 9000 ± 180 \| 17784\.0 \| - \| - \| - \| - \| 300 MiB \| 6144 MiB \|/);
        // beside llama-bench's forward pass and the PyTorch reference of the same run
        // with the trainer's precision: BF16 input gradients and forward matmuls
        expect(md).toMatch(/\| AMD EPYC 2c \| cpu \| stories260K \| [A-Z_0-9]+ \| bf16 \(forward bf16\) \| .* \| 8 \| 16 \| 2500 ± 50\.0 \| 2\.9 \| 10\.0k ± 200 \| 0\.25 \| 1000 ± 20\.0 \(f32\) \| 2\.50 \|/);
        // result links and charts resolve relative to the report
        for (const [, target] of md.matchAll(/\]\(([^)]+)\)/g)) {
            expect(fs.existsSync(path.join(dir, target!)), target).toBe(true);
        }
        expect(md).toContain("![Inference tokens/s by machine and model](report/tokens-by-machine.svg)");
        expect(md).toContain("![Aggregate generation tokens/s against parallel sequences](report/parallel.svg)");
        expect(md).toContain("![Training tokens/s (LoRA)](report/training.svg)");
        expect(md).toContain("skipped");

        expect(report.charts.map((c) => path.basename(c))).toEqual(["tokens-by-machine.svg", "parallel.svg", "training.svg"]);
        for (const chart of report.charts)
            checkWellFormed(fs.readFileSync(chart, "utf8"));
        const bars = fs.readFileSync(report.charts[0]!, "utf8");
        expect(bars).toContain("NVIDIA H200 &lt;&amp;&gt; (cuda, 16t) · synth-1.5b-f16");
        expect(bars).toContain("pp llama-bench");
        const lines = fs.readFileSync(report.charts[1]!, "utf8");
        expect(lines.match(/<polyline/g)).toHaveLength(2); // CPU 1 -> 8 and GPU 1 -> 32
        expect(lines).toContain(">32</text>");
        const training = fs.readFileSync(report.charts[2]!, "utf8");
        for (const series of ["autoact-train", "PyTorch", "llama-bench pp (forward only)"])
            expect(training).toContain(series);
    });

    it("checks the code-identity fields where present, and reads results written before them", () => {
        const old = JSON.parse(JSON.stringify(gpuInfer)) as Record<string, any>;
        expect(validateBenchResult(old)).toEqual([]);
        const bad = JSON.parse(JSON.stringify(cpuInfer)) as Record<string, any>;
        bad.fingerprint.git_dirty = "yes";
        bad.fingerprint.native_build.patches[0].name = "";
        bad.llama_bench.patches = [4];
        expect(validateBenchResult(bad)).toEqual([
            "result.fingerprint.git_dirty: expected true or false",
            "result.fingerprint.native_build.patches[0].name: expected a non-empty string",
            "result.llama_bench.patches: expected an array of strings"
        ]);
    });

    it("tells runs of one configuration apart: time and load in the chart labels and tables, a link to each result", async () => {
        const runs = path.join(dir, "same-config");
        fs.mkdirSync(runs);
        const later: BenchResult = { ...cpuInfer, timestamp: "2026-11-28T09:05:00.000Z", load_avg: { before: 1.5, after: 1.6 } };
        fs.writeFileSync(path.join(runs, "a-infer.json"), JSON.stringify(cpuInfer));
        fs.writeFileSync(path.join(runs, "b-infer.json"), JSON.stringify(later));
        const report = await renderBenchReport({ inDir: runs, out: path.join(runs, "REPORT.md") });
        const md = fs.readFileSync(report.markdown, "utf8");
        // the parallel-sequences and LoRA tables: one row per run, each with its time, load and file
        for (const table of ["### Parallel sequences", "### LoRA adapters"]) {
            const section = md.slice(md.indexOf(table), md.indexOf("\n#", md.indexOf(table) + table.length));
            expect(section).toMatch(/\| 2026-11-27 10:00 UTC \| 0\.20 \| \[json\]\(a-infer\.json\) \|/);
            expect(section).toMatch(/\| 2026-11-28 09:05 UTC \| 1\.50 \| \[json\]\(b-infer\.json\) \|/);
        }
        const parallel = fs.readFileSync(report.charts.find((c) => c.endsWith("parallel.svg"))!, "utf8");
        expect(parallel).toContain("AMD EPYC 2c (cpu, 16t) · synth-100m-q8_0 · 2026-11-27 10:00 UTC, load 0.20</text>");
        expect(parallel).toContain("AMD EPYC 2c (cpu, 16t) · synth-100m-q8_0 · 2026-11-28 09:05 UTC, load 1.50</text>");
    });

    it("renders an empty folder as a report without results", async () => {
        const empty = path.join(dir, "empty");
        fs.mkdirSync(empty);
        const report = await renderBenchReport({ inDir: empty, out: path.join(dir, "empty.md") });
        expect(report.results).toBe(0);
        const md = fs.readFileSync(path.join(dir, "empty.md"), "utf8");
        expect(md).toContain("_No results._");
        for (const chart of report.charts)
            checkWellFormed(fs.readFileSync(chart, "utf8"));
    });
});

describe("svg charts", () => {
    it("places bars on a log axis and points on a log2 axis", () => {
        const svg = barChart({ title: "t", unit: "u", groups: [{ label: "a", bars: [{ series: "s", value: 10 }, { series: "s2", value: 1000 }] }] });
        checkWellFormed(svg);
        const widths = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="12"/g)].map((m) => Number(m[1]));
        expect(widths).toHaveLength(2);
        // 10 and 1000 on a 10..1000 log axis: the first bar is the 1-pixel minimum, the second the full width
        expect(widths[0]).toBe(1);
        expect(widths[1]).toBeGreaterThan(400);
        const line = lineChart({ title: "l", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [{ x: 1, y: 10 }, { x: 4, y: 100 }, { x: 16, y: 1000 }] }] });
        checkWellFormed(line);
        const xs = [...line.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
        // eleven series: the eleventh shares the first one's colour but not its line
        const many = lineChart({ title: "l", xLabel: "x", yLabel: "y", series: Array.from({ length: 11 }, (_, i) => ({ name: `s${i}`, points: [{ x: 1, y: 10 + i }, { x: 2, y: 20 + i }] })) });
        checkWellFormed(many);
        const styles = [...many.matchAll(/<polyline fill="none" stroke="([^"]+)" stroke-width="2"( stroke-dasharray="[^"]+")?/g)].map((m) => `${m[1]}${m[2] ?? ""}`);
        expect(styles).toHaveLength(11);
        expect(new Set(styles).size).toBe(11);
        // equal steps in log2(x) and log10(y): evenly spaced points
        expect(xs[1]![0]! - xs[0]![0]!).toBeCloseTo(xs[2]![0]! - xs[1]![0]!, 0);
        expect(xs[0]![1]! - xs[1]![1]!).toBeCloseTo(xs[1]![1]! - xs[2]![1]!, 0);
    });
});
