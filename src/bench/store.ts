import fs from "node:fs";
import path from "node:path";
import type { BenchResultRow } from "../data/schemas.js";
import { writeTable } from "../data/table-io.js";
import { InputError, errorMessage } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { packageRoot } from "../util/package.js";
import { assertBenchResult, validateBenchResult, type BenchResult, type BenchTest } from "./result.js";

/** bench/results under the package root. */
export const defaultResultsDir = path.join(packageRoot, "bench", "results");

function slug(text: string): string {
    return text.toLowerCase().replace(/[^a-z0-9._]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 48) || "x";
}

/** `<date>-<machine>-<model>-<kind>`, e.g. `2026-11-27-amd-epyc-2c-synth-100m-q8_0-infer`. */
export function resultStem(result: BenchResult): string {
    const date = result.timestamp.slice(0, 10);
    const model = path.basename(result.fingerprint.model.name, ".gguf");
    return [date, slug(result.fingerprint.machine), slug(model), result.kind].join("-");
}

/** The flat Arrow rows of a result: one per measurement (autoact's, llama-bench's and PyTorch's). */
export function benchRows(result: BenchResult): BenchResultRow[] {
    const f = result.fingerprint;
    const reference = (t: BenchTest) => result.llama_bench?.tests.find((r) => r.name === t.name && t.parallel === 1 && t.lora_adapters === 0);
    const row = (t: BenchTest): BenchResultRow => {
        const ref = t.engine === "autoact" && t.parallel === 1 && t.lora_adapters === 0 && !t.name.includes("@") ? reference(t) : undefined;
        return {
            kind: result.kind, engine: t.engine, machine: f.machine, cpu: f.cpu, cores: f.cores, threads: f.threads, ram_bytes: f.ram_bytes,
            gpu: f.gpu, vram_bytes: f.vram_bytes, driver: f.driver, backend: f.backend,
            build: t.engine === "llama-bench" ? "source Release (autoact native build)" : t.engine === "pytorch" ? `PyTorch ${result.torch?.version ?? "?"} (${result.torch?.lora ?? "?"}, ${result.torch?.dtype ?? "?"})` : f.build,
            node_llama_cpp_version: f.node_llama_cpp_version, llama_cpp_version: f.llama_cpp_version,
            model_file: f.model.file, model_sha256: f.model.sha256, model_type: f.model.type, params: f.model.params,
            test: t.name, pp: t.pp > 0 ? t.pp : null, tg: t.tg > 0 ? t.tg : null, parallel: t.parallel,
            lora_adapters: t.lora_adapters, lora: t.lora_adapters > 0 ? JSON.stringify(result.settings.lora ?? null) : null,
            reps: t.reps, mean: t.mean, stddev: t.stddev, unit: t.unit,
            ratio_llama_bench: ref != null && ref.mean > 0 ? t.mean / ref.mean : null,
            ratio_train_to_pp: t.engine === "autoact-train" ? result.ratio_train_to_pp ?? null : null,
            ratio_torch: t.engine === "autoact-train" ? result.ratio_torch ?? null : null,
            peak_rss_bytes: t.peak_rss_bytes, peak_vram_bytes: t.peak_vram_bytes,
            load_avg: result.load_avg.before, timestamp: result.timestamp, command: result.command
        };
    };
    return [...result.tests.map(row), ...(result.llama_bench?.tests ?? []).map(row), ...(result.torch?.tests ?? []).map(row)];
}

export interface WriteResultOptions {
    /** Folder for `<stem>.json` and `<stem>.arrow`. Defaults to bench/results. */
    dir?: string;
    /** Exact JSON path (the Arrow table goes beside it); overrides `dir`. Defaults to none. */
    out?: string;
}

/**
 * Checks a result path given with --out, before the run: a new `*.json` file (the report reads
 * only those, and a result never overwrites an older run).
 */
export function checkResultOut(out: string): void {
    if (!out.endsWith(".json"))
        throw new InputError(`--out ${out}: a result file must end in .json (bench report reads only *.json)`);
    if (fs.existsSync(out))
        throw new InputError(`--out ${out}: the file exists; a result never overwrites an older run (give a new name)`);
}

/** Writes the result JSON (validated first) and its Arrow table; never overwrites an older run. */
export async function writeBenchResult(result: BenchResult, options: WriteResultOptions = {}): Promise<{ json: string; arrow: string }> {
    assertBenchResult(JSON.parse(JSON.stringify(result)), "result to write");
    let json: string;
    if (options.out != null) {
        checkResultOut(options.out);
        json = path.resolve(options.out);
    } else {
        const dir = path.resolve(options.dir ?? defaultResultsDir);
        const stem = resultStem(result);
        json = path.join(dir, `${stem}.json`);
        for (let i = 2; fs.existsSync(json); i++)
            json = path.join(dir, `${stem}-${i}.json`);
    }
    const arrow = json.replace(/\.json$/i, "") + ".arrow";
    await writeFileAtomic(json, `${JSON.stringify(result, null, 2)}\n`);
    await writeTable(arrow, "bench_results", benchRows(result));
    return { json, arrow };
}

export interface LoadedResult {
    file: string;
    result: BenchResult;
}

/**
 * Every valid `*.json` result in a folder (sorted by time); files that claim the result schema
 * but fail it are returned as problems, JSON without the schema field is ignored.
 */
export function loadBenchResults(dir: string): { results: LoadedResult[]; problems: string[] } {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
        throw new InputError(`results folder not found: ${dir}`);
    const results: LoadedResult[] = [];
    const problems: string[] = [];
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort()) {
        const file = path.join(dir, name);
        let parsed: unknown;
        try {
            parsed = JSON.parse(fs.readFileSync(file, "utf8"));
        } catch (error) {
            problems.push(`${file}: not JSON (${errorMessage(error).split("\n")[0]})`);
            continue;
        }
        // other tools' JSON (e.g. bench/engine's speed script) may share the folder: only our files are checked
        const schema = (parsed as { schema?: unknown } | null)?.schema;
        if (typeof schema !== "string" || !schema.startsWith("autoact.bench/"))
            continue;
        const found = validateBenchResult(parsed);
        if (found.length > 0) {
            problems.push(`${file}: ${found[0]}${found.length > 1 ? ` (+${found.length - 1} more)` : ""}`);
            continue;
        }
        results.push({ file, result: parsed as BenchResult });
    }
    results.sort((a, b) => a.result.timestamp.localeCompare(b.result.timestamp) || a.file.localeCompare(b.file));
    return { results, problems };
}
