import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { BENCH_RESULT_SCHEMA, type BenchResult, type BenchTest } from "../../src/bench/index.js";

export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `autoact-bench-${prefix}-`));
}

/** A ~115K-parameter random llama: fast enough for benchmarks inside tests. */
export async function makeTinyModel(dir: string): Promise<string> {
    const out = path.join(dir, "tiny.gguf");
    await writeSyntheticModel({ arch: "llama", nEmbd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 128, ctx: 512, vocab: 320, type: "f32", seed: 3, out });
    return out;
}

export function fixtureTest(name: string, fields: Partial<BenchTest> & { mean: number }): BenchTest {
    return {
        name, engine: "autoact", pp: 0, tg: 0, parallel: 1, lora_adapters: 0, reps: 3,
        samples: [fields.mean * 0.98, fields.mean, fields.mean * 1.02], stddev: fields.mean * 0.02, unit: "tokens/s",
        peak_rss_bytes: 300 * 2 ** 20, peak_vram_bytes: null, ...fields
    };
}

/** A result as `benchInfer`/`benchTrain` write them, for report fixtures. */
export function fixtureResult(options: {
    kind: "infer" | "train"; machine: string; backend: string; gpu?: string; model: string; timestamp: string;
    tests: BenchTest[]; llamaBench?: BenchTest[]; settings?: Record<string, unknown>;
}): BenchResult {
    const find = (name: string, list: BenchTest[] | undefined) => list?.find((t) => t.name === name);
    const ratio = (prefix: string) => {
        const ours = options.tests.find((t) => t.name.startsWith(prefix) && !t.name.includes("@") && !t.name.includes("+"));
        const theirs = ours == null ? undefined : find(ours.name, options.llamaBench);
        return ours != null && theirs != null ? ours.mean / theirs.mean : null;
    };
    return {
        schema: BENCH_RESULT_SCHEMA,
        kind: options.kind,
        timestamp: options.timestamp,
        command: `autoact bench ${options.kind} --model ${options.model}`,
        load_avg: { before: 0.2, after: 0.3 },
        fingerprint: {
            machine: options.machine, hostname: "fixture", os: "Linux x64", cpu: "Fixture CPU", cores: 16, logical_cpus: 32, threads: 16,
            ram_bytes: 128 * 2 ** 30, gpu: options.gpu ?? null, vram_bytes: options.gpu ? 80 * 2 ** 30 : null, driver: options.gpu ? "580.1" : null,
            backend: options.backend, build: "node-llama-cpp prebuilt", node_version: "v20.0.0", node_llama_cpp_version: "3.21.1",
            llama_cpp_version: "v0.4.0", llama_cpp_commit: null,
            model: { file: `/models/${options.model}.gguf`, name: `${options.model}.gguf`, sha256: "a".repeat(64), bytes: 1000, arch: "llama", type: "MOSTLY_Q8_0", params: 100_000_000 }
        },
        settings: options.settings ?? {},
        tests: options.tests,
        llama_bench: options.llamaBench == null ? null : { binary: "/bin/llama-bench", command: "llama-bench -m x", tests: options.llamaBench },
        ratio_pp: options.llamaBench == null ? null : ratio("pp"),
        ratio_tg: options.llamaBench == null ? null : ratio("tg"),
        notes: []
    };
}
