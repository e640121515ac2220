#!/usr/bin/env node
// Training throughput and peak memory of autoact-train on CPU (issue 4, Done-when 9).
// Usage (after `npx tsc -p tsconfig.json` and `autoact native build`):
//   node native/scripts/bench-train.mjs [--threads 2] [--steps 4] [--ctx 256] [--rank 8] [--models stories,100m-f32,100m-q8_0]
// Prints one JSON line per model: tokens/s (mean of steps after the first), peak RSS, step times.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const { writeSyntheticModel } = await import(path.join(root, "dist/src/gguf/synth.js"));
const { ensureNativeBuild, writeTrainingSamples } = await import(path.join(root, "dist/src/train/index.js"));

const { values } = parseArgs({ options: {
    threads: { type: "string", default: "2" }, steps: { type: "string", default: "4" }, ctx: { type: "string", default: "256" },
    rank: { type: "string", default: "8" }, models: { type: "string", default: "stories,100m-f32,100m-q8_0" }
} });
const ctx = Number(values.ctx);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-bench-train-"));
const { trainer } = await ensureNativeBuild({ jobs: Number(values.threads) });

async function baseFor(name) {
    if (name === "stories")
        return { file: path.resolve(root, "../shared/models/stories260K.gguf"), vocab: 512 };
    const [preset, type] = name.split("-");
    const file = path.join(work, `${name}.gguf`);
    const r = await writeSyntheticModel({ preset, type, out: file });
    return { file, vocab: 16384, params: r.params };
}

try {
    for (const name of values.models.split(",")) {
        const base = await baseFor(name);
        // 8 samples of exactly ctx tokens: the first quarter prompt (mask 0), the rest response
        const samples = Array.from({ length: 8 }, (_, s) => {
            const tokens = Array.from({ length: ctx }, (_, i) => 3 + ((s * 131 + i * 17) % (base.vocab - 3)));
            return { tokens, mask: tokens.map((_, i) => (i >= ctx / 4 ? 1 : 0)) };
        });
        const data = path.join(work, `${name}.bin`);
        await writeTrainingSamples(data, samples);
        const args = ["--base", base.file, "--data", data, "--out", path.join(work, `${name}.lora.gguf`), "--steps", values.steps,
            "--rank", values.rank, "--ctx", String(ctx), "--threads", values.threads];
        const run = await execa(trainer, args, { reject: false });
        const events = run.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
        const steps = events.filter((e) => e.event === "step");
        const done = events.find((e) => e.event === "done");
        if (run.exitCode !== 0 || !done)
            throw new Error(`${name}: trainer failed: ${run.stderr.split("\n").slice(-5).join("\n")}`);
        // per-step time from elapsed differences; the first step (allocation warm-up) is left out
        const times = steps.map((s, i) => s.elapsed_s - (i === 0 ? 0 : steps[i - 1].elapsed_s));
        const later = times.slice(1);
        const mean = later.reduce((a, b) => a + b, 0) / later.length;
        const sd = Math.sqrt(later.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, later.length - 1));
        console.log(JSON.stringify({
            model: name, params: base.params ?? 292800, ctx, rank: Number(values.rank), threads: Number(values.threads),
            lora_params: done.n_params, tokens_per_step: ctx, step_s_mean: +mean.toFixed(3), step_s_sd: +sd.toFixed(3),
            tokens_per_s: +(ctx / mean).toFixed(1), peak_rss_mib: +(done.peak_rss_bytes / 2 ** 20).toFixed(1),
            first_loss: done.first_loss, last_loss: done.loss
        }));
    }
} finally {
    fs.rmSync(work, { recursive: true, force: true });
}
