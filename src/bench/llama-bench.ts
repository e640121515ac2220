import { execa } from "execa";
import { RuntimeFailure } from "../util/errors.js";
import { requireFile } from "../util/fs.js";
import { poolTests, type BenchTest } from "./result.js";
import { mean, stddev } from "./stats.js";

export interface LlamaBenchOptions {
    /** The llama-bench executable. */
    binary: string;
    model: string;
    threads: number;
    pp: number;
    tg: number;
    reps: number;
    /** Logical and physical batch (-b, -ub): the same as autoact's context. */
    batchSize: number;
    flashAttention: boolean;
    /** Layers on the GPU (-ngl); 0 on CPU. */
    gpuLayers: number;
}

export interface LlamaBenchRun {
    command: string;
    tests: BenchTest[];
    /** llama-bench's `build_commit`. */
    commit: string | null;
    /** llama-bench's `gpu_info` / `backends`. */
    gpuInfo: string | null;
    backends: string | null;
}

interface LlamaBenchRow {
    n_prompt: number;
    n_gen: number;
    samples_ts?: number[];
    avg_ts: number;
    stddev_ts: number;
    build_commit?: string;
    gpu_info?: string;
    backends?: string;
}

/** llama-bench's arguments for the same sizes, threads, batch and attention as autoact's test. */
export function llamaBenchArgs(options: LlamaBenchOptions): string[] {
    return [
        "-m", options.model, "-t", String(options.threads), "-p", String(options.pp), "-n", String(options.tg),
        "-r", String(options.reps), "-b", String(options.batchSize), "-ub", String(options.batchSize),
        "-fa", options.flashAttention ? "1" : "0", "-ngl", String(options.gpuLayers), "-o", "json"
    ];
}

/** Runs llama-bench (warm-up and `reps` repetitions are its own) and returns pp and tg as tests. */
export async function runLlamaBench(options: LlamaBenchOptions): Promise<LlamaBenchRun> {
    requireFile(options.binary, "llama-bench executable");
    const args = llamaBenchArgs(options);
    const command = [options.binary, ...args].map(quoteArg).join(" ");
    const result = await execa(options.binary, args, { reject: false, stdin: "ignore", all: false });
    if (result.exitCode !== 0)
        throw new RuntimeFailure(`llama-bench failed (exit ${result.exitCode}): ${String(result.stderr).trim().split("\n").slice(-3).join(" | ")}`);
    let rows: LlamaBenchRow[];
    try {
        rows = JSON.parse(String(result.stdout)) as LlamaBenchRow[];
    } catch {
        throw new RuntimeFailure(`llama-bench printed no JSON: ${String(result.stdout).slice(0, 200)}`);
    }
    const tests = rows.map((row): BenchTest => {
        const samples = row.samples_ts ?? [];
        const pp = row.n_prompt;
        const tg = row.n_gen;
        return {
            name: tg > 0 ? `tg${tg}` : `pp${pp}`,
            engine: "llama-bench",
            pp,
            tg,
            parallel: 1,
            lora_adapters: 0,
            reps: samples.length || options.reps,
            samples,
            mean: samples.length > 0 ? mean(samples) : row.avg_ts,
            stddev: samples.length > 0 ? stddev(samples) : row.stddev_ts,
            unit: "tokens/s",
            peak_rss_bytes: null,
            peak_vram_bytes: null
        };
    });
    const first = rows[0];
    return {
        command,
        tests,
        commit: first?.build_commit ?? null,
        gpuInfo: first?.gpu_info ? first.gpu_info : null,
        backends: first?.backends ?? null
    };
}

/**
 * llama-bench one repetition at a time, run between autoact's own repetitions of the same
 * test, so that both engines' samples span the same minutes of a machine whose speed drifts
 * (on a shared 2-core VM, back-to-back phases differed by 25% in llama-bench's own tg).
 */
export class InterleavedLlamaBench {
    private readonly runs = new Map<string, BenchTest[]>();
    private first: LlamaBenchRun | null = null;

    constructor(private readonly options: Omit<LlamaBenchOptions, "reps">) {}

    /** One llama-bench call of one repetition (after its own warm-up) of the pp or the tg test. */
    async rep(test: "pp" | "tg"): Promise<void> {
        const run = await runLlamaBench({ ...this.options, reps: 1, pp: test === "pp" ? this.options.pp : 0, tg: test === "tg" ? this.options.tg : 0 });
        this.first ??= run;
        for (const t of run.tests)
            this.runs.set(t.name, [...(this.runs.get(t.name) ?? []), t]);
    }

    /** The repetitions so far as one run's tests; null before any. */
    result(): LlamaBenchRun | null {
        if (this.first == null)
            return null;
        const args = llamaBenchArgs({ ...this.options, reps: 1 });
        const tests = [...this.runs.values()].map(poolTests);
        const command = `${[this.options.binary, ...args].map(quoteArg).join(" ")} (one repetition per call, -p or -n set to 0, alternating with autoact's repetitions)`;
        return { ...this.first, command, tests };
    }
}

export function quoteArg(arg: string): string {
    return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}
