#!/usr/bin/env node
// The trainer's correctness checks (test/train/trainer.test.ts, fast-paths.test.ts) on a GPU
// backend, where the tests cannot run (CI has no GPU): every layer offloaded, tiny synthetic
// bases, the trainer's own --grad-check and --grad-dump modes. Needs dist/ (npm run build) and
// native/build/<backend>/bin/autoact-train.
//
//   node bench/gpu/trainer-check.mjs [--backend cuda] [--work DIR]
//
// One JSON line per check ({check, value, limit, pass, ...}); exit 1 when one fails. The last
// check lists the scheduler's graph splits of a training pass on Q8_0 and Q4_K bases: a split
// on the CPU other than the token embeddings' would be a host fallback of the backward pass.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { writeSyntheticModel } = await import(path.join(root, "dist/src/gguf/synth.js"));
const { writeTrainingSamples } = await import(path.join(root, "dist/src/train/samples-file.js"));
const { readGradDump, relMaxDiff } = await import(path.join(root, "dist/src/train/grad-dump.js"));

const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
};
const backend = arg("--backend", "cuda");
const work = arg("--work", fs.mkdtempSync(path.join(os.tmpdir(), "autoact-gpu-check-")));
fs.mkdirSync(work, { recursive: true });
const trainer = path.join(root, "native/build", backend, "bin/autoact-train");
const onCpu = backend === "cpu";
const offload = onCpu ? ["--threads", "2"] : ["--n-gpu-layers", "-1"];
// ggml-cuda runs F32 matmuls in TF32 (10-bit mantissas: its cuBLAS math mode), so F32 paths agree
// to a few 1e-3 there (a rounding of 2^-11 per product, through the layers), not 1e-6; finite
// differences of such a loss are noise (the GPU's gradients are compared with the CPU's instead)
const f32Tol = onCpu ? 1e-4 : 5e-3;
let failed = 0;

function report(check, value, limit, pass, extra = {}) {
    if (!pass)
        failed++;
    console.log(JSON.stringify({ check, value, limit, pass, ...extra }));
}

async function train(args, env = {}, where = offload) {
    const run = await execa(trainer, [...where, "--ctx", "64", ...args], { reject: false, stdin: "ignore", env });
    const events = String(run.stdout).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    if (run.exitCode !== 0)
        throw new Error(`autoact-train ${args.join(" ")} failed (exit ${run.exitCode}): ${String(run.stderr).trim().split("\n").slice(-5).join(" | ")}`);
    return { events, stderr: String(run.stderr), losses: events.filter((e) => e.event === "step").map((e) => e.loss) };
}

async function gradDump(name, model, data, args, where = offload) {
    const out = path.join(work, `${name}.grads`);
    await train(["--base", model, "--data", data, "--out", path.join(work, `${name}.gguf`), "--grad-dump", out, ...args], {}, where);
    return readGradDump(out);
}

async function samples(name, count, vocabFrom = 40) {
    const list = Array.from({ length: count }, (_, s) => {
        const tokens = Array.from({ length: 12 + ((s * 7) % 17) }, (_, i) => vocabFrom + ((s * 13 + i * 5) % 60));
        return { tokens, mask: tokens.map((_, i) => (i >= 5 ? 1 : 0)) };
    });
    const file = path.join(work, `${name}.bin`);
    await writeTrainingSamples(file, list);
    return file;
}

const model = async (name, o) => (await writeSyntheticModel({ arch: "llama", seed: 1, out: path.join(work, `${name}.gguf`), ...o })).path;
const f32 = await model("tiny-f32", { nEmbd: 64, layers: 2, heads: 4, ff: 128, vocab: 300, type: "f32" });
const q8 = await model("q8", { nEmbd: 256, layers: 2, heads: 4, ff: 256, vocab: 320, type: "q8_0" });
const q4k = await model("q4k", { nEmbd: 256, layers: 2, heads: 4, ff: 256, vocab: 320, type: "q4_k" });
const data = await samples("mixed", 8);
const quantData = await samples("quant", 4, 60);

// 1. gradients against central differences, F32 throughout (on a GPU: against the CPU's)
if (onCpu) {
    const run = await train(["--base", f32, "--data", data, "--out", path.join(work, "gc.gguf"), "--grad-check", "28", "--rank", "4",
        "--mixed-precision", "off"]);
    const checks = run.events.filter((e) => e.event === "grad_check");
    const worst = Math.max(...checks.map((c) => c.rel_error));
    report("grad-check: max relative error (28 entries, every module)", worst, 1e-2, checks.length === 28 && worst < 1e-2);
} else {
    // a quantized base's forward matmuls quantize the activations to 8 bits on CUDA (MMQ), to
    // Q8_0 blocks on the CPU: the two differ by about 1e-2; a BF16 base's round them to BF16 on
    // the CPU (8.3e-3 from the F32 base there)
    const bf16 = await model("tiny-bf16", { nEmbd: 64, layers: 2, heads: 4, ff: 128, vocab: 300, type: "bf16" });
    for (const [name, base, args, tol] of [["F32", f32, [], f32Tol], ["Q8_0", q8, ["--frozen-backward", "matmul"], 2e-2],
        ["BF16", bf16, ["--frozen-backward", "matmul"], 3e-2]]) {
        const common = [...args, "--batch", "8", "--mixed-precision", "off"];
        const gpu = await gradDump(`${name}-gpu`, base, data, common);
        const cpu = await gradDump(`${name}-cpu`, base, data, common, ["--n-gpu-layers", "0", "--threads", "8"]);
        const d = relMaxDiff(cpu.grads, gpu.grads);
        report(`${name}: gradients on ${backend} vs on the CPU (max relative difference)`, d, tol, d < tol,
            { loss_difference: Math.abs(gpu.loss - cpu.loss) });
    }
}
// 2. packed samples = one sample per micro-batch
{
    const packed = await gradDump("packed", f32, data, ["--batch", "8", "--batch-tokens", "256", "--mixed-precision", "off"]);
    const single = await gradDump("single", f32, data, ["--batch", "8", "--batch-tokens", "8", "--mixed-precision", "off"]);
    report("packed = unpacked: loss difference", Math.abs(packed.loss - single.loss), f32Tol, Math.abs(packed.loss - single.loss) < f32Tol);
    const d = relMaxDiff(single.grads, packed.grads);
    report("packed = unpacked: gradients (max relative difference)", d, f32Tol, d < f32Tol);
}
// 2b. the loss's gradient computed in the forward pass, in chunks = ggml's backward pass of the whole loss
{
    const forward = await gradDump("loss-fwd", f32, data, ["--batch", "8", "--backward-slice", "4000", "--mixed-precision", "off"]);
    const backward = await gradDump("loss-bwd", f32, data, ["--batch", "8", "--loss-gradient", "backward", "--mixed-precision", "off"]);
    const d = relMaxDiff(backward.grads, forward.grads);
    report("loss gradient in the forward pass (chunks) = ggml's backward: gradients (max relative difference)", d, f32Tol, d < f32Tol,
        { loss_difference: Math.abs(forward.loss - backward.loss) });
}
// 3. the reused graph = a fresh graph per micro-batch
{
    const common = ["--base", f32, "--data", data, "--steps", "6", "--lr", "1e-2", "--batch", "3", "--batch-tokens", "64"];
    const reused = await train([...common, "--out", path.join(work, "reused.gguf")]);
    const fresh = await train([...common, "--out", path.join(work, "fresh.gguf"), "--no-graph-reuse"]);
    const d = Math.max(...reused.losses.map((l, i) => Math.abs(l - fresh.losses[i])));
    report("reused graph = fresh graph: max loss difference over 6 steps", d, 1e-6, reused.losses.length === 6 && d <= 1e-6);
}
// 4. input gradients through frozen quantized weights: matmuls (F32, F16) against upstream's OUT_PROD
for (const [name, base] of [["Q8_0", q8], ["Q4_K", q4k]]) {
    const args = ["--batch", "4", "--targets", "attn_q"];
    const reference = await gradDump(`${name}-ref`, base, quantData, [...args, "--frozen-backward", "out_prod", "--mixed-precision", "off"]);
    const matmul = await gradDump(`${name}-mm`, base, quantData, [...args, "--frozen-backward", "matmul", "--mixed-precision", "off"]);
    const f16 = await gradDump(`${name}-f16`, base, quantData, [...args, "--frozen-backward", "matmul", "--mixed-precision", "on"]);
    // On a CPU every choice but out_prod runs the forward pass on the weights llama.cpp repacks for
    // the CPU's own kernels (AMX tiles, AVX2 blocks), whose Q8_0 kernels quantize and sum the
    // activations their own way (llama-perplexity differs as much with --repack and --no-repack):
    // there the matmul backward is held to the copies made once (the same forward pass), and
    // OUT_PROD's plain forward pass to the forward kernels' difference.
    const sameForward = onCpu ? await gradDump(`${name}-cached`, base, quantData, [...args, "--frozen-backward", "cached", "--mixed-precision", "off"]) : reference;
    const against = onCpu ? "copies made once" : "OUT_PROD";
    const dm = relMaxDiff(sameForward.grads, matmul.grads);
    const dh = relMaxDiff(sameForward.grads, f16.grads);
    report(`${name}: input gradients, F32 matmul vs ${against}`, dm, f32Tol, dm < f32Tol);
    report(`${name}: input gradients, F16 matmul vs ${against}`, dh, 1e-2, dh < 1e-2);
    if (onCpu) {
        const dr = relMaxDiff(reference.grads, sameForward.grads);
        report(`${name}: input gradients, the repacked forward pass vs OUT_PROD's plain one`, dr, 1e-2, dr < 1e-2);
    }
}
// 5. mixed precision keeps the training loss within 1e-2 of F32 (the 16-bit input gradients, on
// and auto; a CPU's BF16 forward matmuls, on there, within 2e-2)
{
    const common = ["--base", f32, "--data", data, "--steps", "8", "--lr", "1e-2", "--batch", "4"];
    const a = (await train([...common, "--out", path.join(work, "mp-off.gguf"), "--mixed-precision", "off"])).losses;
    for (const mode of ["on", "auto"]) {
        const run = await train([...common, "--out", path.join(work, `mp-${mode}.gguf`), "--mixed-precision", mode]);
        const limit = run.events[0].forward_bf16 ? 2e-2 : 1e-2;
        const d = Math.max(...a.map((l, i) => Math.abs(l - run.losses[i])));
        report(`mixed precision ${mode} (${run.events[0].input_grad_type}${run.events[0].forward_bf16 ? ", forward bf16" : ""}): max loss difference from F32 over 8 steps`,
            d, limit, d < limit && a.at(-1) < a[0]);
    }
}
// 6. recomputed activations (a GPU's default) = kept activations, dropout masks included
{
    const common = ["--base", f32, "--data", data, "--steps", "4", "--lr", "1e-2", "--batch", "4", "--lora-dropout", "0.1",
        "--mixed-precision", "off"];
    const kept = await train([...common, "--out", path.join(work, "rc-off.gguf"), "--recompute", "off"]);
    const recomputed = await train([...common, "--out", path.join(work, "rc-on.gguf"), "--recompute", "on"]);
    const d = Math.max(...kept.losses.map((l, i) => Math.abs(l - recomputed.losses[i])));
    report("recomputed activations = kept: max loss difference over 4 steps", d, f32Tol, kept.losses.length === 4 && d < f32Tol);
    const a = await gradDump("rc-kept", f32, data, ["--batch", "8", "--mixed-precision", "off", "--recompute", "off"]);
    const b = await gradDump("rc-on", f32, data, ["--batch", "8", "--mixed-precision", "off", "--recompute", "on"]);
    const g = relMaxDiff(a.grads, b.grads);
    report("recomputed activations = kept: gradients (max relative difference)", g, f32Tol, g < f32Tol);
    // the masks come from sin() of large arguments: a device's fast sin must still draw them evenly
    const dump = await train(["--base", f32, "--data", data, "--out", path.join(work, "masks.gguf"), "--grad-dump",
        path.join(work, "masks.grads"), "--batch", "8", "--lora-dropout", "0.3"]);
    const masks = dump.events.find((e) => e.event === "grad_dump").dropout_masks;
    const worst = Math.max(...masks.map((m) => Math.max(Math.abs(m.kept - 0.7), Math.abs(m.neighbours_equal - 0.58))));
    report("dropout 0.3: masks keep 0.7, neighbours equal 0.58 (largest deviation)", worst, 0.04, masks.length > 0 && worst < 0.04, { masks });
}
// 7. where the training graph runs: the scheduler's splits (GGML_SCHED_DEBUG prints them)
for (const [name, base] of [["Q8_0", q8], ["Q4_K", q4k]]) {
    const run = await train(["--base", base, "--data", quantData, "--out", path.join(work, `${name}-splits.gguf`), "--steps", "1",
        "--batch", "4", "--verbose"], { GGML_SCHED_DEBUG: "1" });
    // one block of "## SPLIT #0.. #n" lines per graph the scheduler split: the largest is the training pass
    const blocks = [];
    for (const m of run.stderr.matchAll(/## SPLIT #(\d+): (\S+) # \d+ inputs(.*)/g)) {
        if (m[1] === "0")
            blocks.push([]);
        blocks.at(-1)?.push({ backend: m[2], inputs: m[3].replace(/^:\s*/, "").trim().slice(0, 160) });
    }
    const splits = blocks.reduce((a, b) => (b.length > a.length ? b : a), []);
    const host = splits.filter((s) => !/^(CUDA|Vulkan|Metal)/.test(s.backend));
    report(`${name}: graph splits of a training pass (host splits listed)`, splits.length, null, backend === "cpu" || host.length <= 1,
        { backends: splits.map((s) => s.backend).join(" "), host });
}
fs.rmSync(work, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
