/**
 * Engine speed against llama.cpp's own llama-bench (same model, same threads).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/engine/engine-speed.js \
 *       [--threads N] [--reps 5] [--tokens 128] [--parallel 8] [--llama-bench PATH] [--models stories,27m] [--out FILE]
 *
 * Per model: llama-bench tg<tokens> (and pp512), then the engine's one-sequence generation
 * (tg: tokens / wall time of `complete`, EOS ignored, one-token prompt as llama-bench) and
 * `parallel` sequences in aggregate. Warm-up, then `reps` repetitions: mean and standard
 * deviation. Writes a JSON result with a hardware fingerprint.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createEngine, physicalCoreCount, type LoadedModel } from "../../src/llm/engine.js";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { packageRoot } from "../../src/util/package.js";

interface Args { threads: number; reps: number; tokens: number; parallel: number; llamaBench: string; models: string[]; out?: string }

function parseArgs(argv: string[]): Args {
    const get = (flag: string) => {
        const i = argv.indexOf(flag);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    return {
        threads: Number(get("--threads") ?? physicalCoreCount()),
        reps: Number(get("--reps") ?? 5),
        tokens: Number(get("--tokens") ?? 128),
        parallel: Number(get("--parallel") ?? 8),
        llamaBench: get("--llama-bench") ?? path.join(packageRoot, ".cache/probe-build/bin/llama-bench"),
        models: (get("--models") ?? "stories,27m").split(","),
        out: get("--out")
    };
}

async function modelPath(name: string): Promise<string | undefined> {
    if (name === "stories") {
        const p = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
        return fs.existsSync(p) ? p : undefined;
    }
    if (fs.existsSync(name))
        return path.resolve(name);
    const dir = path.join(os.tmpdir(), "autoact-bench");
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, `${name}.gguf`);
    if (!fs.existsSync(out))
        await writeSyntheticModel({ preset: name, out, seed: 1 });
    return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => {
    const m = mean(xs);
    return xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

function llamaBench(bin: string, model: string, threads: number, tokens: number, reps: number): { tg: number; tgStd: number; pp: number; ppStd: number } | undefined {
    if (!fs.existsSync(bin))
        return undefined;
    const out = execFileSync(bin, ["-m", model, "-t", String(threads), "-p", "512", "-n", String(tokens), "-r", String(reps), "-o", "json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const rows = JSON.parse(out) as { n_prompt: number; n_gen: number; avg_ts: number; stddev_ts: number }[];
    const tg = rows.find((r) => r.n_gen > 0)!;
    const pp = rows.find((r) => r.n_prompt > 0)!;
    return { tg: tg.avg_ts, tgStd: tg.stddev_ts, pp: pp.avg_ts, ppStd: pp.stddev_ts };
}

async function engineSpeed(model: LoadedModel, tokens: number, reps: number, parallel: number) {
    const prompt = [model.bosToken ?? model.tokenize("a")[0]!];
    const request = { prompt, maxTokens: tokens, ignoreEos: true };
    const single = await model.createGenerator({ parallel: 1, contextSize: tokens + 16 });
    await single.complete(request); // warm-up
    const tg: number[] = [];
    for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        const result = await single.complete(request);
        tg.push(result.generatedTokens / ((performance.now() - t0) / 1000));
    }
    await single.dispose();

    const many = await model.createGenerator({ parallel, contextSize: tokens + 16 });
    const requests = Array.from({ length: parallel }, () => request);
    await many.generate(requests); // warm-up
    const agg: number[] = [];
    for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        const results = await many.generate(requests);
        agg.push(results.reduce((s, x) => s + x.generatedTokens, 0) / ((performance.now() - t0) / 1000));
    }
    await many.dispose();
    return { tg: mean(tg), tgStd: std(tg), agg: mean(agg), aggStd: std(agg) };
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2));
    const engine = await createEngine({ gpu: "cpu", threads: args.threads });
    const rows = [];
    for (const name of args.models) {
        const file = await modelPath(name);
        if (file == null) {
            console.log(`skip ${name}: model not found`);
            continue;
        }
        const reference = llamaBench(args.llamaBench, file, args.threads, args.tokens, args.reps);
        const model = await engine.loadModel(file);
        const ours = await engineSpeed(model, args.tokens, args.reps, args.parallel);
        await model.dispose();
        const row = {
            model: name, file, params: undefined as number | undefined, threads: args.threads,
            llamaBench: reference,
            engine: ours,
            ratioTg: reference ? ours.tg / reference.tg : undefined,
            ratioParallel: reference ? ours.agg / reference.tg : undefined
        };
        rows.push(row);
        console.log(`${name} (t=${args.threads}): llama-bench tg${args.tokens} ${reference?.tg.toFixed(0) ?? "n/a"} ± ${reference?.tgStd.toFixed(0) ?? "-"} t/s, pp512 ${reference?.pp.toFixed(0) ?? "n/a"} | engine 1 seq ${ours.tg.toFixed(0)} ± ${ours.tgStd.toFixed(0)} t/s (${row.ratioTg?.toFixed(2) ?? "?"}x) | ${args.parallel} seqs ${ours.agg.toFixed(0)} ± ${ours.aggStd.toFixed(0)} t/s aggregate (${row.ratioParallel?.toFixed(2) ?? "?"}x of llama-bench tg)`);
    }
    await engine.dispose();
    const result = {
        bench: "engine-speed",
        date: new Date().toISOString(),
        host: { hostname: os.hostname(), cpu: os.cpus()[0]?.model, logicalCpus: os.cpus().length, physicalCores: physicalCoreCount(), memGiB: os.totalmem() / 2 ** 30, node: process.version, loadavg: os.loadavg() },
        args,
        rows
    };
    const out = args.out ?? path.join(packageRoot, "bench/results", `engine-speed-${os.hostname()}-${result.date.slice(0, 10)}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
    console.log(`wrote ${out}`);
}

await main();
