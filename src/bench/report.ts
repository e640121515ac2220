import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../util/fs.js";
import type { BenchResult, BenchTest } from "./result.js";
import { loadBenchResults, type LoadedResult } from "./store.js";
import { barChart, formatValue, lineChart, type BarGroup } from "./svg.js";

export interface BenchReportOptions {
    /** Folder of result JSON files. */
    inDir: string;
    /** Markdown file; the SVG charts go into a `report/` folder beside it. */
    out: string;
}

export interface BenchReport {
    markdown: string;
    charts: string[];
    results: number;
    /** Files that were not valid results, with the reason. */
    skipped: string[];
}

const gib = (bytes: number | null | undefined) => (bytes == null ? "-" : `${(bytes / 2 ** 30).toFixed(bytes >= 10 * 2 ** 30 ? 0 : 1)} GiB`);
const mib = (bytes: number | null | undefined) => (bytes == null ? "-" : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const params = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${(n / 1e3).toFixed(0)}K`);
const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
const ts = (t: BenchTest | undefined) => (t == null ? "-" : `${formatValue(t.mean)} ± ${formatValue(t.stddev)}`);
const ratio = (r: number | null) => (r == null ? "-" : r.toFixed(2));

function table(header: string[], rows: string[][]): string {
    if (rows.length === 0)
        return "_No results._\n";
    const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
    // numbers right-aligned, text left
    const numeric = header.map((_, i) => rows.every((r) => /^[-\d.]|^(pp|tg)\d+ [\d.]/.test(r[i] ?? "")));
    return [line(header), `|${numeric.map((n) => (n ? " ---: " : " --- ")).join("|")}|`, ...rows.map(line)].join("\n") + "\n";
}

/** "0.1.0 @ 1a2b3c4d5 (dirty)": the autoact code that ran; "-" for results before it was recorded. */
function codeLabel(r: BenchResult): string {
    const f = r.fingerprint;
    if (f.autoact_version == null)
        return "-";
    return `${f.autoact_version}${f.git_commit != null ? ` @ ${f.git_commit.slice(0, 9)}${f.git_dirty === true ? " (dirty)" : ""}` : ""}`;
}

/** "v0.4.0 + 13 patches #1a2b3c4d": the native build's source; the hash tells patch sets apart. */
function nativeLabel(r: BenchResult): string {
    const build = r.fingerprint.native_build;
    if (build == null)
        return "-";
    const hash = crypto.createHash("sha256").update(build.patches.map((p) => `${p.name}:${p.sha256}`).join("\n")).digest("hex").slice(0, 8);
    return `${build.tag} + ${build.patches.length} patches #${hash}`;
}

function modelLabel(r: BenchResult): string {
    return path.basename(r.fingerprint.model.name, ".gguf");
}

/** "2026-11-29 18:33 UTC": when a run started, which tells runs of one configuration apart. */
function runTime(r: BenchResult): string {
    return `${r.timestamp.slice(0, 10)} ${r.timestamp.slice(11, 16)} UTC`;
}

function runLabel(r: BenchResult): string {
    const uv = r.settings.uv_threadpool_size;
    return `${r.fingerprint.machine} (${r.fingerprint.backend}, ${r.fingerprint.threads}t${uv != null ? `, uv ${String(uv)}` : ""}${r.settings.engine_helper === true ? ", helper" : ""}) · ${modelLabel(r)} · ${runTime(r)}, load ${r.load_avg.before.toFixed(2)}`;
}

function autoact(r: BenchResult, predicate: (t: BenchTest) => boolean): BenchTest | undefined {
    return r.tests.find((t) => t.engine !== "llama-bench" && predicate(t));
}

/** llama-bench's tests: beside autoact's, or the run's own in a llama-bench-only run. */
function reference(r: BenchResult): BenchTest[] {
    return r.llama_bench?.tests ?? r.tests.filter((t) => t.engine === "llama-bench");
}

const isPp = (t: BenchTest) => t.pp > 0 && t.tg === 0 && t.parallel === 1 && t.lora_adapters === 0 && !t.name.includes("+");
const isTg = (t: BenchTest) => t.tg > 0 && t.pp === 0 && t.parallel === 1 && t.lora_adapters === 0 && !t.name.includes("@") && !t.name.includes("+");

/**
 * Renders REPORT.md from every valid result in `inDir`: machines, inference (with the
 * llama-bench ratios), parallel sequences, LoRA cost and training tables, and three SVG charts
 * referenced by relative paths so they render on GitHub.
 */
export async function renderBenchReport(options: BenchReportOptions): Promise<BenchReport> {
    const { results, problems } = loadBenchResults(options.inDir);
    const outFile = path.resolve(options.out);
    const chartDir = path.join(path.dirname(outFile), "report");
    const rel = (file: string) => path.relative(path.dirname(outFile), file).split(path.sep).join("/");
    const infer = results.filter((r) => r.result.kind === "infer");
    const train = results.filter((r) => r.result.kind === "train");

    const md: string[] = [];
    md.push("# Benchmark report", "");
    md.push(`Rendered by \`autoact bench report\` from ${results.length} result file(s) in \`${rel(path.resolve(options.inDir))}/\`. ` +
        "Each run follows llama-bench's method: a warm-up, then repetitions; figures are mean ± standard deviation in tokens/s. " +
        "Prompt processing (pp) and generation (tg) are timed apart, with random token ids; results that record `settings.sampling` ran the pipeline's generator with the synth stage's sampling and a stop string, older ones decoded without sampling. " +
        "The load column is the machine's 1-minute load average when the run started: other work on the cores makes figures lower and noisier.", "");
    if (fs.existsSync(path.join(path.dirname(outFile), "README.md")))
        md.push("Method, result format and what the figures show: [README.md](README.md).", "");

    md.push("## Machines", "");
    const machines = new Map<string, BenchResult[]>();
    for (const { result } of results) {
        const key = `${result.fingerprint.machine}|${result.fingerprint.backend}`;
        machines.set(key, [...(machines.get(key) ?? []), result]);
    }
    // when, how loaded and which file: what tells runs of one configuration apart
    const runCells = (file: string, r: BenchResult) => [runTime(r), r.load_avg.before.toFixed(2), `[json](${rel(file)})`];
    const joined = (runs: BenchResult[], pick: (r: BenchResult) => string) => [...new Set(runs.map(pick))].join(", ");
    md.push("autoact is the version and commit that ran (dirty: with uncommitted changes); native build is the source llama-bench and autoact-train were built from: llama.cpp's tag plus the project's patches (`native/patches/`), told apart by a hash of the patch set.", "");
    md.push(table(["machine", "CPU", "cores", "threads used", "RAM", "GPU", "VRAM", "driver", "backend", "builds", "node-llama-cpp", "llama.cpp", "autoact", "native build"],
        [...machines.values()].map((runs) => {
            const f = runs[0]!.fingerprint;
            return [f.machine, f.cpu, String(f.cores), joined(runs, (r) => String(r.fingerprint.threads)), gib(f.ram_bytes), f.gpu ?? "-", gib(f.vram_bytes), f.driver ?? "-",
                f.backend, joined(runs, (r) => r.fingerprint.build), f.node_llama_cpp_version,
                `${f.llama_cpp_version}${runs.some((r) => r.fingerprint.llama_cpp_commit) ? ` (${joined(runs.filter((r) => r.fingerprint.llama_cpp_commit), (r) => r.fingerprint.llama_cpp_commit!)})` : ""}`,
                joined(runs, codeLabel), joined(runs, nativeLabel)];
        })));

    md.push("## Inference", "");
    md.push("autoact is the pipeline's own generator (queue, scheduler, decode backend, sampling, stop strings; results before 2026-11-29 drove the native context directly). " +
        "llama-bench is llama.cpp's own benchmark, built by `autoact native build` from the llama.cpp source node-llama-cpp ships (same tag) with the project's patches applied " +
        "(`native/patches/`, some of which change CPU kernels; the result's `llama_bench.patches` lists them) and `-march=native`, while autoact runs node-llama-cpp's prebuilt binary; " +
        "it runs with the same model, threads, batch size and attention, so a ratio (autoact / llama-bench) measures the two builds as well as the two engines.", "");
    md.push(table(["machine", "backend", "model", "type", "params", "threads", "pp autoact", "pp llama-bench", "ratio pp", "tg autoact", "tg llama-bench", "ratio tg", "load", "result"],
        infer.map(({ file, result: r }) => {
            const pp = autoact(r, isPp);
            const tg = autoact(r, isTg);
            const lpp = reference(r).find(isPp);
            const ltg = reference(r).find(isTg);
            const uv = r.settings.uv_threadpool_size;
            return [r.fingerprint.machine, r.fingerprint.backend, modelLabel(r), r.fingerprint.model.type, params(r.fingerprint.model.params),
                `${r.fingerprint.threads}${uv != null ? ` (uv ${String(uv)})` : ""}${r.settings.engine_helper === true ? " (helper)" : ""}`,
                pp == null ? "-" : `${pp.name} ${ts(pp)}`, ts(lpp), ratio(r.ratio_pp), tg == null ? "-" : `${tg.name} ${ts(tg)}`, ts(ltg), ratio(r.ratio_tg),
                r.load_avg.before.toFixed(2), `[json](${rel(file)})`];
        })));

    md.push("### Parallel sequences", "");
    md.push("Aggregate generation tokens/s of N sequences decoding together in one context, one batch per step.", "");
    const counts = [...new Set(infer.flatMap(({ result }) => result.tests.filter((t) => t.name.includes("@")).map((t) => t.parallel)))].sort((a, b) => a - b);
    md.push(table(["machine", "backend", "model", ...counts.map((n) => `${n} seq`), "best / 1 seq", "run", "load", "result"],
        infer.filter(({ result }) => result.tests.some((t) => t.name.includes("@"))).map(({ file, result: r }) => {
            const at = (n: number) => r.tests.find((t) => t.name.includes("@") && t.parallel === n);
            const one = at(1)?.mean ?? autoact(r, isTg)?.mean;
            const best = Math.max(...r.tests.filter((t) => t.name.includes("@")).map((t) => t.mean));
            return [r.fingerprint.machine, r.fingerprint.backend, modelLabel(r), ...counts.map((n) => ts(at(n))), one ? `${(best / one).toFixed(2)}x` : "-", ...runCells(file, r)];
        })));

    const loraRuns = infer.filter(({ result }) => result.tests.some((t) => t.lora_adapters > 0));
    md.push("### LoRA adapters", "");
    md.push("Cost of sub-agent adapters on one model: no adapter, one context with an adapter, and three contexts each with its own adapter taking turns (tokens/s counts all three). " +
        "Peak RSS is the benchmark process's peak over the whole run (model load and every test), not the adapters' cost alone.", "");
    md.push(table(["machine", "backend", "model", "pp base", "pp 1 adapter", "pp 3 contexts", "tg base", "tg 1 adapter", "tg 3 contexts", "peak RSS (whole run)", "run", "load", "result"],
        loraRuns.map(({ file, result: r }) => {
            const lora = (n: number, kind: "pp" | "tg") => r.tests.find((t) => t.lora_adapters === n && (kind === "pp" ? t.pp > 0 : t.tg > 0));
            const peak = Math.max(...r.tests.map((t) => t.peak_rss_bytes ?? 0));
            return [r.fingerprint.machine, r.fingerprint.backend, modelLabel(r), ts(autoact(r, isPp)), ts(lora(1, "pp")), ts(lora(3, "pp")),
                ts(autoact(r, isTg)), ts(lora(1, "tg")), ts(lora(3, "tg")), mib(peak || null), ...runCells(file, r)];
        })));

    md.push("## Training", "");
    md.push("autoact-train (LoRA on a frozen base, llama.cpp's graphs): tokens/s of each optimizer step after the first (`batch` samples of `ctx` tokens per step; runs before the packed trainer trained one sample per step), peak RSS as the trainer reports it (its process's maxRSS) and peak VRAM as nvidia-smi reports it for the trainer's process (CUDA context and pools included; the PyTorch reference's own figure in the result JSON is torch.cuda.max_memory_allocated, tensors only, so not comparable). " +
        "In the same run: llama-bench pp<ctx> of the same file, threads and backend (the forward pass alone; train / pp is the share of it training reaches), " +
        "and with `--compare-torch` a PyTorch LoRA of the same shape (`bench/reference/torch_lora.py`: random frozen weights, same rank, alpha, targets, ctx and threads; bf16 on a GPU, f32 on a CPU unless `--torch-dtype` says otherwise). " +
        "Input grads: the type of the input gradients through the frozen weights (`--mixed-precision`), whether the forward matmuls ran on BF16 copies, and (per pass) where the transposed copies of the weights for the input gradients were made in each pass rather than once (`--frozen-backward`). " +
        "GFLOP/s counts about 4 x parameters FLOPs per token (forward plus the input-gradient pass).", "");
    md.push(table(["machine", "backend", "model", "type", "input grads", "params", "rank", "ctx", "batch", "threads", "tokens/s", "GFLOP/s", "pp llama-bench", "train / pp", "PyTorch", "train / PyTorch", "peak RSS", "peak VRAM", "load", "result"],
        train.map(({ file, result: r }) => {
            const t = r.tests[0]!;
            const flops = Number(r.settings.flops_per_token ?? 4 * r.fingerprint.model.params);
            const torch = r.torch?.tests[0];
            const grads = r.settings.input_grad_type == null ? "-"
                : `${String(r.settings.input_grad_type)}${r.settings.forward_bf16 === true ? " (forward bf16)" : ""}${r.settings.frozen_backward === "matmul" ? " (per pass)" : ""}`;
            return [r.fingerprint.machine, r.fingerprint.backend, modelLabel(r), r.fingerprint.model.type, grads, params(r.fingerprint.model.params),
                String(r.settings.rank ?? "-"), String(r.settings.ctx ?? "-"), String(r.settings.batch ?? 1), String(r.fingerprint.threads), ts(t), (t.mean * flops / 1e9).toFixed(1),
                ts(reference(r).find(isPp)), ratio(r.ratio_train_to_pp ?? null), torch == null ? "-" : `${ts(torch)} (${r.torch!.dtype})`, ratio(r.ratio_torch ?? null),
                mib(t.peak_rss_bytes), mib(t.peak_vram_bytes), r.load_avg.before.toFixed(2), `[json](${rel(file)})`];
        })));

    const charts = await writeCharts(chartDir, infer, train);
    md.push("## Charts", "");
    for (const chart of charts)
        md.push(`![${chart.title}](${rel(chart.file)})`, "");

    const notes = results.flatMap(({ file, result }) => result.notes.map((n) => `- \`${path.basename(file)}\`: ${n}`));
    if (notes.length > 0 || problems.length > 0) {
        md.push("## Notes", "");
        md.push(...notes, ...problems.map((p) => `- skipped ${p}`), "");
    }
    await writeFileAtomic(outFile, md.join("\n"));
    return { markdown: outFile, charts: charts.map((c) => c.file), results: results.length, skipped: problems };
}

async function writeCharts(dir: string, infer: LoadedResult[], train: LoadedResult[]): Promise<{ title: string; file: string }[]> {
    fs.mkdirSync(dir, { recursive: true });
    const written: { title: string; file: string }[] = [];
    const write = async (name: string, title: string, content: string) => {
        const file = path.join(dir, name);
        await writeFileAtomic(file, content);
        written.push({ title, file });
    };

    const groups: BarGroup[] = infer.map(({ result: r }) => {
        const bars = [];
        const pp = autoact(r, isPp);
        const tg = autoact(r, isTg);
        const lpp = reference(r).find(isPp);
        const ltg = reference(r).find(isTg);
        if (pp != null)
            bars.push({ series: "pp autoact", value: pp.mean, error: pp.stddev });
        if (lpp != null)
            bars.push({ series: "pp llama-bench", value: lpp.mean, error: lpp.stddev });
        if (tg != null)
            bars.push({ series: "tg autoact", value: tg.mean, error: tg.stddev });
        if (ltg != null)
            bars.push({ series: "tg llama-bench", value: ltg.mean, error: ltg.stddev });
        return { label: runLabel(r), bars };
    }).filter((g) => g.bars.length > 0);
    await write("tokens-by-machine.svg", "Inference tokens/s by machine and model",
        barChart({ title: "Inference tokens/s by machine and model", unit: "tokens/s (log scale)", groups }));

    const series = infer.map(({ result: r }) => ({
        name: runLabel(r),
        points: r.tests.filter((t) => t.name.includes("@")).map((t) => ({ x: t.parallel, y: t.mean, error: t.stddev }))
    })).filter((s) => s.points.length > 0);
    await write("parallel.svg", "Aggregate generation tokens/s against parallel sequences",
        lineChart({ title: "Aggregate generation tokens/s against parallel sequences", xLabel: "parallel sequences (one batch per step)", yLabel: "aggregate tokens/s (log scale)", series }));

    const trainGroups: BarGroup[] = train.map(({ result: r }) => ({
        label: `${runLabel(r)} r${String(r.settings.rank ?? "?")} ctx ${String(r.settings.ctx ?? "?")}`,
        bars: [
            ...r.tests.map((t) => ({ series: "autoact-train", value: t.mean, error: t.stddev })),
            ...(r.torch?.tests ?? []).map((t) => ({ series: "PyTorch", value: t.mean, error: t.stddev })),
            ...reference(r).filter(isPp).map((t) => ({ series: "llama-bench pp (forward only)", value: t.mean, error: t.stddev }))
        ]
    }));
    await write("training.svg", "Training tokens/s (LoRA)",
        barChart({ title: "Training tokens/s (LoRA)", unit: "tokens/s (log scale)", groups: trainGroups }));
    return written;
}
