/**
 * Engine speed against llama.cpp's own llama-bench (same model, same threads).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/engine/engine-speed.js \
 *       [--threads N] [--reps 5] [--rounds 3] [--tokens 128] [--parallel 8] [--llama-bench PATH] [--models stories,27m]
 *       [--plain] [--out FILE]
 *
 * Per model: llama-bench tg<tokens>, pp<parallel> (the batch a parallel step decodes: the
 * ceiling of parallel generation) and pp512, then the engine's one-sequence generation
 * (tg: tokens / wall time of `complete`, EOS ignored, one-token prompt as llama-bench), the
 * same sampled at temperature 0.8, and `parallel` sequences in aggregate. With --plain, the
 * same engine without autoact's helper addon (node-llama-cpp's own calls) too. Warm-up, then
 * `reps` repetitions: mean and standard deviation. On a shared machine the load moves
 * between measurements, so llama-bench and the engine alternate for `rounds` rounds and the
 * ratios are the medians of the per-round ratios. Writes a JSON result with a hardware
 * fingerprint and the load average before and after.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createEngine, defaultThreadCount, type LoadedModel } from "../../src/llm/engine.js";
import { physicalCoreCount } from "../../src/llm/cpu.js";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { packageRoot } from "../../src/util/package.js";

interface Args { threads: number; reps: number; rounds: number; tokens: number; parallel: number; llamaBench: string; models: string[]; plain: boolean; out?: string }

function parseArgs(argv: string[]): Args {
    const get = (flag: string) => {
        const i = argv.indexOf(flag);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    return {
        threads: Number(get("--threads") ?? defaultThreadCount()),
        reps: Number(get("--reps") ?? 5),
        rounds: Number(get("--rounds") ?? 3),
        tokens: Number(get("--tokens") ?? 128),
        parallel: Number(get("--parallel") ?? 8),
        llamaBench: get("--llama-bench") ?? path.join(packageRoot, ".cache/probe-build/bin/llama-bench"),
        models: (get("--models") ?? "stories,27m").split(","),
        plain: argv.includes("--plain"),
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

function llamaBench(bin: string, model: string, threads: number, tokens: number, reps: number, batch: number) {
    if (!fs.existsSync(bin))
        return undefined;
    const out = execFileSync(bin, ["-m", model, "-t", String(threads), "-p", `512,${batch}`, "-n", String(tokens), "-r", String(reps), "-o", "json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const rows = JSON.parse(out) as { n_prompt: number; n_gen: number; avg_ts: number; stddev_ts: number }[];
    const tg = rows.find((r) => r.n_gen > 0)!;
    const pp = rows.find((r) => r.n_prompt === 512)!;
    const ppBatch = rows.find((r) => r.n_prompt === batch)!;
    return { tg: tg.avg_ts, tgStd: tg.stddev_ts, pp: pp.avg_ts, ppStd: pp.stddev_ts, ppBatch: ppBatch.avg_ts, ppBatchStd: ppBatch.stddev_ts };
}

async function timed(reps: number, run: () => Promise<number>): Promise<{ mean: number; std: number }> {
    await run(); // warm-up
    const rates: number[] = [];
    for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        const tokens = await run();
        rates.push(tokens / ((performance.now() - t0) / 1000));
    }
    return { mean: mean(rates), std: std(rates) };
}

async function engineSpeed(model: LoadedModel, tokens: number, reps: number, parallel: number) {
    const prompt = [model.bosToken ?? model.tokenize("a")[0]!];
    const request = { prompt, maxTokens: tokens, ignoreEos: true };
    const single = await model.createGenerator({ parallel: 1, contextSize: tokens + 16 });
    const tg = await timed(reps, async () => (await single.complete(request)).generatedTokens);
    let seed = 1;
    const sampled = await timed(reps, async () => (await single.complete({ ...request, temperature: 0.8, seed: seed++ })).generatedTokens);
    const accelerated = single.accelerated;
    await single.dispose();

    const many = await model.createGenerator({ parallel, contextSize: tokens + 16 });
    const requests = Array.from({ length: parallel }, () => request);
    const agg = await timed(reps, async () => (await many.generate(requests)).reduce((s, x) => s + x.generatedTokens, 0));
    await many.dispose();
    return { accelerated, tg: tg.mean, tgStd: tg.std, sampled: sampled.mean, sampledStd: sampled.std, agg: agg.mean, aggStd: agg.std };
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2));
    const loadBefore = os.loadavg();
    const engine = await createEngine({ gpu: "cpu", threads: args.threads });
    const plainEngine = args.plain ? await createEngine({ gpu: "cpu", threads: args.threads, helper: false }) : undefined;
    const rows = [];
    const f = (x: number | undefined) => x?.toFixed(0) ?? "n/a";
    for (const name of args.models) {
        const file = await modelPath(name);
        if (file == null) {
            console.log(`skip ${name}: model not found`);
            continue;
        }
        const model = await engine.loadModel(file);
        const rounds = [];
        for (let round = 0; round < Math.max(1, args.rounds); round++) {
            const reference = llamaBench(args.llamaBench, file, args.threads, args.tokens, args.reps, args.parallel);
            const ours = await engineSpeed(model, args.tokens, args.reps, args.parallel);
            rounds.push({ reference, ours, ratioTg: reference ? ours.tg / reference.tg : undefined, ratioParallel: reference ? ours.agg / reference.tg : undefined });
        }
        await model.dispose();
        const median = (xs: (number | undefined)[]) => {
            const v = xs.filter((x): x is number => x != null).sort((a, b) => a - b);
            return v.length === 0 ? undefined : v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
        };
        // The round whose tg ratio is the median stands for the model in the summary line.
        const ratioTg = median(rounds.map((r) => r.ratioTg));
        const ratioParallel = median(rounds.map((r) => r.ratioParallel));
        const { reference, ours } = rounds.find((r) => r.ratioTg === ratioTg) ?? rounds[Math.floor(rounds.length / 2)]!;
        let plain;
        if (plainEngine != null) {
            const plainModel = await plainEngine.loadModel(file);
            plain = await engineSpeed(plainModel, args.tokens, Math.min(args.reps, 2), args.parallel);
            await plainModel.dispose();
        }
        const row = {
            model: name, file, threads: args.threads,
            llamaBench: reference,
            engine: ours,
            plain,
            rounds,
            ratioTg,
            ratioParallel
        };
        rows.push(row);
        console.log(`${name} (t=${args.threads}): llama-bench tg${args.tokens} ${f(reference?.tg)} ± ${f(reference?.tgStd)} t/s, pp${args.parallel} ${f(reference?.ppBatch)} ± ${f(reference?.ppBatchStd)}, pp512 ${f(reference?.pp)}`
            + ` | engine${ours.accelerated ? "" : " (no helper)"} 1 seq ${f(ours.tg)} ± ${f(ours.tgStd)} t/s, sampled ${f(ours.sampled)} ± ${f(ours.sampledStd)}`
            + ` | ${args.parallel} seqs ${f(ours.agg)} ± ${f(ours.aggStd)} t/s aggregate`
            + ` | median of ${rounds.length} rounds: 1 seq ${ratioTg?.toFixed(2) ?? "?"}x, ${args.parallel} seqs ${ratioParallel?.toFixed(2) ?? "?"}x of llama-bench tg`
            + ` (per round ${rounds.map((r) => `${r.ratioTg?.toFixed(2) ?? "?"}/${r.ratioParallel?.toFixed(2) ?? "?"}`).join(", ")})`
            + (plain ? ` | without helper: 1 seq ${f(plain.tg)}, sampled ${f(plain.sampled)}, ${args.parallel} seqs ${f(plain.agg)} t/s` : ""));
    }
    await plainEngine?.dispose();
    await engine.dispose();
    const result = {
        bench: "engine-speed",
        date: new Date().toISOString(),
        host: { hostname: os.hostname(), cpu: os.cpus()[0]?.model, logicalCpus: os.cpus().length, physicalCores: physicalCoreCount(), memGiB: os.totalmem() / 2 ** 30, node: process.version, loadavgBefore: loadBefore, loadavgAfter: os.loadavg() },
        args,
        rows
    };
    console.log(`load average before ${loadBefore.map((x) => x.toFixed(2)).join(" ")}, after ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
    const out = args.out ?? path.join(packageRoot, "bench/results", `engine-speed-${os.hostname()}-${result.date.slice(0, 10)}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
    console.log(`wrote ${out}`);
}

await main();
