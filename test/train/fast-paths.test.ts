import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { readGradDump, relMaxDiff, type GradDump } from "../../src/train/grad-dump.js";
import type { TokenizedSample } from "../../src/train/index.js";
import { BUILD_TIMEOUT_MS, nativeBuild, runTrainer, samplesFile, stepLosses, tempDir, tinyModel } from "./helpers.js";

/** Whether /proc/cpuinfo lists the flag (false where there is none). */
function cpuHas(flag: string): boolean {
    try {
        return new RegExp(`^flags\\s*:.*\\b${flag}\\b`, "m").test(fs.readFileSync("/proc/cpuinfo", "utf8"));
    } catch {
        return false;
    }
}

/** Samples of different lengths, so that packing puts several side by side. */
function mixedSamples(count: number, vocabFrom = 40): TokenizedSample[] {
    return Array.from({ length: count }, (_, s) => {
        const tokens = Array.from({ length: 12 + ((s * 7) % 17) }, (_, i) => vocabFrom + ((s * 13 + i * 5) % 60));
        return { tokens, mask: tokens.map((_, i) => (i >= 5 ? 1 : 0)) };
    });
}

/** Samples of a full 256-token context each, the response from the 17th token on: a large training graph. */
function fullContextSamples(count: number): TokenizedSample[] {
    return Array.from({ length: count }, (_, s) => {
        const tokens = Array.from({ length: 256 }, (_, i) => 40 + ((s * 13 + i * 5) % 300));
        return { tokens, mask: tokens.map((_, i) => (i >= 16 ? 1 : 0)) };
    });
}

describe("the trainer's fast paths agree with the plain ones", () => {
    let dir: string;
    let base: string;
    let data: string;

    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-fast");
        base = await tinyModel(dir);
        data = await samplesFile(dir, mixedSamples(8));
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    async function gradDump(name: string, args: string[], model = base, samples = data) {
        return (await gradDumpRun(name, args, model, samples)).dump;
    }

    async function gradDumpRun(name: string, args: string[], model = base, samples = data) {
        const out = path.join(dir, `${name}.grads`);
        const run = await runTrainer(["--base", model, "--data", samples, "--out", path.join(dir, `${name}.gguf`),
            "--ctx", "64", "--grad-dump", out, ...args]);
        expect(run.exitCode, run.stderr).toBe(0);
        return { dump: readGradDump(out), start: run.events.find((e) => e.event === "start")!, dumped: run.events.find((e) => e.event === "grad_dump")! };
    }

    // Two steps of one micro-batch of 8 full-context samples, as the memory plan decides them: the
    // done line, the losses, the notices and the bytes that pass_fits weighs (the model and the
    // process's own state, the copies or the file pages they are made from, the compute buffer).
    async function trainPlanned(model: string, samples: string, name: string, args: string[]) {
        const r = await runTrainer(["--base", model, "--data", samples, "--out", path.join(dir, `${name}.gguf`), "--ctx", "256", "--batch", "8",
            "--batch-tokens", "2048", "--steps", "2", "--mixed-precision", "off", ...args]);
        expect(r.exitCode, r.stderr).toBe(0);
        const start = r.events.find((e) => e.event === "start")!;
        const done = r.events.find((e) => e.event === "done")!;
        return { done, held: Number(start.memory_held_bytes), losses: stepLosses(r), notices: r.events.filter((e) => e.event === "notice").map((e) => e.message as string),
            bytes: Number(start.memory_held_bytes) + Number(done.weight_copy_bytes) + Number(done.weight_file_bytes) + Number(done.compute_buffer_bytes.CPU) };
    }

    // Two grad dumps of one step agree: the loss within `lossTol`, every gradient within `gradTol`
    // (max relative difference), and the gradients are not all zero (the comparison means something).
    function expectSameDump(reference: GradDump, other: GradDump, lossTol: number, gradTol: number) {
        expect(Math.abs(other.loss - reference.loss)).toBeLessThan(lossTol);
        expect(relMaxDiff(reference.grads, other.grads)).toBeLessThan(gradTol);
        expect(other.grads.some((g) => g.some((v) => v !== 0))).toBe(true);
    }

    it("packed samples (attention within blocks, block-diagonal in each) give the loss and gradients of one sample per micro-batch", async () => {
        // 8 samples a step (12-28 tokens): one per micro-batch of 32 tokens; all in one micro-batch
        // of three 64-token blocks (--ctx 64); all in one block of 256 tokens (--ctx 256).
        // In F32: 16-bit input gradients would round the packings' sums differently
        const single = await gradDump("single", ["--batch", "8", "--batch-tokens", "8", "--mixed-precision", "off"]);
        const blocks = await gradDumpRun("packed", ["--batch", "8", "--batch-tokens", "256", "--mixed-precision", "off"]);
        const whole = await gradDumpRun("packed-whole", ["--batch", "8", "--batch-tokens", "256", "--ctx", "256", "--mixed-precision", "off"]);
        expect([blocks.start.batch_tokens, blocks.start.attention_block]).toEqual([192, 64]);
        expect([whole.start.batch_tokens, whole.start.attention_block]).toEqual([160, 160]);
        expectSameDump(single, blocks.dump, 1e-4, 1e-4);
        expectSameDump(single, whole.dump, 1e-4, 1e-4);
    });

    it("the loss's gradient computed in the forward pass, a chunk of rows at a time, equals ggml's backward pass of the whole loss", async () => {
        // 12 rows a chunk (vocabulary 320); in F32, as above
        const forward = await gradDump("loss-forward", ["--batch", "8", "--backward-slice", "4000", "--mixed-precision", "off"]);
        const backward = await gradDump("loss-backward", ["--batch", "8", "--loss-gradient", "backward", "--mixed-precision", "off"]);
        expectSameDump(backward, forward, 1e-5, 1e-4);
    });

    it("the reused graph gives the same losses as a fresh graph for every micro-batch", async () => {
        const common = ["--base", base, "--data", data, "--ctx", "64", "--steps", "6", "--lr", "1e-2", "--batch", "3",
            "--batch-tokens", "64", "--eval-fraction", "0.25"];
        const reused = await runTrainer([...common, "--out", path.join(dir, "reused.gguf")]);
        const fresh = await runTrainer([...common, "--out", path.join(dir, "fresh.gguf"), "--no-graph-reuse"]);
        expect(reused.exitCode, reused.stderr).toBe(0);
        expect(fresh.exitCode, fresh.stderr).toBe(0);
        expect(stepLosses(reused)).toEqual(stepLosses(fresh));
        const done = (run: typeof reused) => run.events.find((e) => e.event === "done")!;
        expect(done(reused).eval_loss).toBe(done(fresh).eval_loss);
        // a build per shape (and per switch between training and eval passes), not per pass
        expect(done(fresh).graph_builds).toBe(done(fresh).passes);
        expect(done(reused).passes).toBeGreaterThan(6);
        expect(done(reused).graph_builds).toBeLessThanOrEqual(3);
    });

    it("Q4_K: input gradients through the frozen weights (transposed copies, cached, per pass or a slice at a time) match upstream's OUT_PROD (F32); 16 bits (BF16 or F16) within 1e-2, the same made once or in each pass", async () => {
        // Q4_K blocks are 256 wide: its base needs rows of 256
        const q4k = (await writeSyntheticModel({ arch: "llama", nEmbd: 256, layers: 2, heads: 4, ff: 256, vocab: 320, type: "q4_k",
            out: path.join(dir, "q4k.gguf") })).path;
        const q4kData = await samplesFile(dir, mixedSamples(4, 60), "q4k.bin");
        // attn_q only: its gradient reaches the adapter only through the frozen layers above it
        const args = ["--batch", "4", "--targets", "attn_q"];
        const reference = await gradDump("q4k-ref", [...args, "--frozen-backward", "out_prod"], q4k, q4kData);
        // cached copies: the forward pass takes the weights llama.cpp repacks for the CPU's own kernels
        // (AVX2's interleaved Q4_K blocks, AMX tiles), the copies come from the file
        const cachedRun = await gradDumpRun("q4k-cached", [...args, "--frozen-backward", "cached", "--mixed-precision", "off"], q4k, q4kData);
        const cached = cachedRun.dump;
        const perPassRun = await gradDumpRun("q4k-matmul", [...args, "--frozen-backward", "matmul", "--mixed-precision", "off"], q4k, q4kData);
        const perPass = perPassRun.dump;
        // per pass too: the copies in each pass read the repacked weights' bytes from the mapped file
        if (cpuHas("avx2")) {
            expect(cachedRun.dumped.repacked_weights).toBeGreaterThan(0);
            expect(perPassRun.dumped.repacked_weights).toBe(cachedRun.dumped.repacked_weights);
            // whose pages each pass reads again: the memory plan counts them (made once, the copies are read at start only)
            expect(perPassRun.dumped.weight_file_bytes).toBeGreaterThan(0);
            expect(cachedRun.dumped.weight_file_bytes).toBe(0);
        }
        const mixed = await gradDump("q4k-16", [...args, "--frozen-backward", "cached", "--mixed-precision", "on"], q4k, q4kData);
        // in 16 bits, the copies made in each pass (within the training graph) are the copies made once
        // at start (a graph of their own), bit for bit: on a CPU, one op makes both
        const mixedPerPass = await gradDump("q4k-16-matmul", [...args, "--frozen-backward", "matmul", "--mixed-precision", "on"], q4k, q4kData);
        // every weight of over 2 x 10,000 elements (all of this model's) a slice of rows at a time, and
        // the loss (with its gradient) a chunk of 31 output rows at a time (10,000 / the 320 entries of the
        // vocabulary): the step's ~60 rows in two chunks
        const sliced = await gradDump("q4k-sliced", [...args, "--frozen-backward", "matmul", "--mixed-precision", "off", "--backward-slice", "10000"], q4k, q4kData);
        // the repacked weights' kernels may sum a row in another order than the plain ones
        expect(Math.abs(cached.loss - reference.loss)).toBeLessThan(1e-5);
        expect(relMaxDiff(reference.grads, cached.grads)).toBeLessThan(1e-4);
        expect(relMaxDiff(reference.grads, perPass.grads)).toBeLessThan(1e-4);
        expect(sliced.loss).toBe(perPass.loss);
        expect(relMaxDiff(reference.grads, sliced.grads)).toBeLessThan(1e-4);
        expect(sliced.grads).not.toEqual(perPass.grads); // the slices' sums ran in another order: the slicing happened
        expect(relMaxDiff(reference.grads, mixed.grads)).toBeLessThan(1e-2);
        expect(relMaxDiff(reference.grads, mixed.grads)).toBeGreaterThan(0); // 16 bits really ran
        expect(mixedPerPass.loss).toBe(mixed.loss);
        expect(mixedPerPass.grads).toEqual(mixed.grads);
    });

    it("a BF16 base trains through the matmul backward: loss and gradients near the F32 base of the same seed; upstream's OUT_PROD is an input error", async () => {
        const bf16 = await tinyModel(dir, { type: "bf16" });
        const args = ["--batch", "4", "--mixed-precision", "off"];
        const reference = await gradDump("bf16-ref", args);
        const grads = await gradDump("bf16", args, bf16);
        // the weights differ by BF16's rounding (2^-9), and the CPU's BF16 matmuls round the activations too
        expectSameDump(reference, grads, 1e-2, 3e-2); // measured 5.6e-3 and 8.3e-3
        expect(relMaxDiff(reference.grads, grads.grads)).toBeGreaterThan(0);
        const outProd = await runTrainer(["--base", bf16, "--data", data, "--out", path.join(dir, "bf16-op.gguf"), "--ctx", "64",
            "--frozen-backward", "out_prod"]);
        expect(outProd.exitCode).toBe(2);
        expect(outProd.stderr.trim().split("\n").at(-1)).toMatch(/is BF16, which --frozen-backward out_prod cannot backpropagate through/);
    });

    it("--recompute: the backward pass on recomputed activations gives the same losses and gradients in a smaller compute buffer", async () => {
        const common = ["--base", base, "--data", data, "--ctx", "64", "--steps", "4", "--lr", "1e-2", "--batch", "4",
            "--lora-dropout", "0.1"]; // the dropout masks are recomputed too
        const kept = await runTrainer([...common, "--out", path.join(dir, "kept.gguf"), "--recompute", "off"]);
        const recomputed = await runTrainer([...common, "--out", path.join(dir, "recomputed.gguf"), "--recompute", "on"]);
        expect(kept.exitCode, kept.stderr).toBe(0);
        expect(recomputed.exitCode, recomputed.stderr).toBe(0);
        expect(recomputed.events[0]!.recompute).toBe(true);
        expect(kept.events[0]!.recompute).toBe(false); // auto: off on the CPU
        expect(stepLosses(recomputed)).toEqual(stepLosses(kept));
        const done = (run: typeof kept) => run.events.find((e) => e.event === "done")!;
        expect(done(recomputed).train_graph_nodes).toBeGreaterThan(done(kept).train_graph_nodes); // the copies
        expect(done(recomputed).compute_buffer_bytes.CPU).toBeLessThan(0.7 * done(kept).compute_buffer_bytes.CPU);

        const dumpKept = await gradDump("rc-kept", ["--batch", "8", "--recompute", "off"]);
        const dumpRecomputed = await gradDump("rc-on", ["--batch", "8", "--recompute", "on"]);
        expect(dumpRecomputed.loss).toBe(dumpKept.loss);
        expect(relMaxDiff(dumpKept.grads, dumpRecomputed.grads)).toBeLessThan(1e-6);
    });

    it("packing is first fit: a short sample takes the room an earlier block left", async () => {
        // 40, 40, 20, 20 tokens fed, blocks of 64: in order they would take three blocks
        // ([40] [40 20] [20]); first fit takes two ([40 20] [40 20])
        const samples = [41, 41, 21, 21].map((length, s) => {
            const tokens = Array.from({ length }, (_, i) => 40 + ((s * 11 + i * 7) % 60));
            return { tokens, mask: tokens.map((_, i) => (i >= 4 ? 1 : 0)) };
        });
        const file = await samplesFile(dir, samples, "first-fit.bin");
        const common = ["--base", base, "--data", file, "--ctx", "64", "--batch", "4", "--steps", "1"];
        const oneBlock = await runTrainer([...common, "--batch-tokens", "64", "--out", path.join(dir, "ff-one.gguf")]);
        const twoBlocks = await runTrainer([...common, "--batch-tokens", "128", "--out", path.join(dir, "ff-two.gguf")]);
        expect(oneBlock.exitCode, oneBlock.stderr).toBe(0);
        expect(twoBlocks.exitCode, twoBlocks.stderr).toBe(0);
        const done = (run: typeof oneBlock) => run.events.find((e) => e.event === "done")!;
        expect([done(oneBlock).passes, done(twoBlocks).passes]).toEqual([2, 1]);
        expect(Math.abs(done(oneBlock).loss - done(twoBlocks).loss)).toBeLessThan(1e-5);
    });

    it("attention within blocks holds a compute buffer well under one block of the whole micro-batch (its scores n_block x T, not T x T)", async () => {
        // 48 samples (928 tokens) in one micro-batch: fifteen 64-token blocks (960), or one block (928)
        const many = await samplesFile(dir, mixedSamples(48), "many.bin");
        const common = ["--base", base, "--data", many, "--batch", "48", "--batch-tokens", "1024", "--steps", "1"];
        const blocks = await runTrainer([...common, "--out", path.join(dir, "blocks.gguf"), "--ctx", "64"]);
        const whole = await runTrainer([...common, "--out", path.join(dir, "whole.gguf"), "--ctx", "1024"]);
        expect(blocks.exitCode, blocks.stderr).toBe(0);
        expect(whole.exitCode, whole.stderr).toBe(0);
        expect([blocks.events[0]!.batch_tokens, blocks.events[0]!.attention_block]).toEqual([960, 64]);
        expect([whole.events[0]!.batch_tokens, whole.events[0]!.attention_block]).toEqual([928, 928]);
        const done = (run: typeof blocks) => run.events.find((e) => e.event === "done")!;
        expect(done(blocks).loss).toBeCloseTo(done(whole).loss, 4);
        // one head's 928 x 928 scores are 3.4 MB; measured 11.2 MB against 50.0 MB
        expect(done(blocks).compute_buffer_bytes.CPU).toBeLessThan(0.5 * done(whole).compute_buffer_bytes.CPU);
    });

    it("the compute buffer holds a chunk of the logits, not llama.cpp's reserve for the logits of every token", async () => {
        const vocab = 16384;
        const wide = path.join(dir, "wide-vocab.gguf");
        await writeSyntheticModel({ arch: "llama", nEmbd: 64, layers: 1, heads: 4, ff: 128, ctx: 256, vocab, out: wide });
        const run = await runTrainer(["--base", wide, "--data", data, "--out", path.join(dir, "wide-vocab-lora.gguf"), "--ctx", "256",
            "--batch", "8", "--steps", "1", "--backward-slice", String(1 << 17)]); // all 8 samples in one micro-batch; 16 rows of logits at a time
        expect(run.exitCode, run.stderr).toBe(0);
        const tokens = run.events[0]!.batch_tokens as number;
        expect(tokens).toBeGreaterThanOrEqual(128);
        const done = run.events.find((e) => e.event === "done")!;
        expect(Number.isFinite(done.loss)).toBe(true);
        // the whole micro-batch's logits: 10.5 MB at 160 tokens; measured 3.1 MB (10.6 MB when the reserve was kept)
        expect(done.compute_buffer_bytes.CPU).toBeLessThan(0.4 * vocab * tokens * 4);
    });

    it("on a CPU, auto makes the weight copies once and keeps every layer's activations where they fit the memory available, else copies in each pass and recomputes, each with a notice", async () => {
        const run = async (name: string, args: string[]) => {
            const out = path.join(dir, `${name}.grads`);
            // 8 samples in one micro-batch: a compute buffer of ~2 MB beside the 0.5 MB model, over 1 MiB
            const r = await runTrainer(["--base", base, "--data", data, "--out", path.join(dir, `${name}.gguf`), "--ctx", "64",
                "--batch", "8", "--batch-tokens", "256", "--mixed-precision", "off", "--grad-dump", out, ...args]);
            expect(r.exitCode, r.stderr).toBe(0);
            return { dump: readGradDump(out), start: r.events.find((e) => e.event === "start")!,
                notices: r.events.filter((e) => e.event === "notice") };
        };
        const roomy = await run("auto-roomy", []);
        expect(roomy.start).toMatchObject({ frozen_backward: "cached" });
        expect(roomy.notices).toEqual([]);
        if (process.platform === "linux")
            expect(Number(roomy.start.memory_available_bytes)).toBeGreaterThan(2 ** 26); // read from /proc/meminfo and the cgroups
        const tight = await run("auto-tight", ["--memory-available", "1"]);
        // the model and its copies alone fit in 1 MiB: the copies are planned once, and the training
        // graph, measured before it is allocated (patch 0021), is declined and built again each way in turn
        expect(tight.start).toMatchObject({ frozen_backward: "cached", memory_available_bytes: 2 ** 20 });
        const graphNotice = /^a training pass's activations \(.* GiB\) with the model and the weight copies or the file pages they are made from \(.* GiB\) would not fit in the 0\.00 GiB of memory available: /;
        expect(tight.notices.map((n) => n.message)).toEqual([
            expect.stringMatching(new RegExp(graphNotice.source + "the frozen weights' copies are made in each pass instead")),
            expect.stringMatching(new RegExp(graphNotice.source + "each layer's activations are recomputed in the backward pass instead .*, with the frozen weights' copies made once$")),
            expect.stringMatching(new RegExp(graphNotice.source + "the frozen weights' copies are made in each pass instead"))
        ]);
        expect(relMaxDiff(roomy.dump.grads, tight.dump.grads)).toBeLessThan(1e-4);
        // a whole run takes the losses of the choices the notices name, made by hand
        const common = ["--base", base, "--data", data, "--ctx", "64", "--steps", "3", "--lr", "1e-2", "--batch", "8", "--batch-tokens", "256", "--mixed-precision", "off"];
        const auto = await runTrainer([...common, "--out", path.join(dir, "auto-run.gguf"), "--memory-available", "1"]);
        const byHand = await runTrainer([...common, "--out", path.join(dir, "hand-run.gguf"), "--frozen-backward", "matmul", "--recompute", "on"]);
        expect(auto.exitCode, auto.stderr).toBe(0);
        expect(auto.events.find((e) => e.event === "done")).toMatchObject({ frozen_backward: "matmul", recompute: true, weight_copy_bytes: 0 });
        expect(stepLosses(auto)).toEqual(stepLosses(byHand));
        // a choice the user made stands
        expect((await run("cached-tight", ["--memory-available", "1", "--frozen-backward", "cached"])).start).toMatchObject({ frozen_backward: "cached" });
    });

    it("on a CPU, auto decides the copies and the activations by the training graph's measure: copies made once where they fit beside it, else in each pass before any recomputing", async () => {
        // weights of some MiB (the option's unit): 4 layers 512 wide in F32, copies in F32
        const model = path.join(dir, "plans-512.gguf");
        await writeSyntheticModel({ arch: "llama", nEmbd: 512, layers: 4, heads: 8, ff: 1024, ctx: 256, vocab: 512, out: model });
        const long = await samplesFile(dir, fullContextSamples(8), "plans.bin");
        const train = (name: string, args: string[]) => trainPlanned(model, long, name, args);
        // the four ways, each chosen by hand
        const once = await train("plans-once", ["--frozen-backward", "cached", "--recompute", "off"]);
        const perPass = await train("plans-per-pass", ["--frozen-backward", "matmul", "--recompute", "off"]);
        const onceRecomputed = await train("plans-once-recomputed", ["--frozen-backward", "cached", "--recompute", "on"]);
        const MiB = 2 ** 20;
        // the copies outweigh what making them in each pass adds to a pass, and the activations
        // kept outweigh the copies: each way below has a range of memory where it is auto's first that fits
        expect(once.bytes).toBeGreaterThan(perPass.bytes + 4 * MiB);
        expect(perPass.bytes).toBeGreaterThan(onceRecomputed.bytes + 4 * MiB);
        const auto = (bytes: number) => train(`plans-auto-${bytes}`, ["--memory-available", String(Math.ceil(bytes / MiB) + 1)]);
        const roomy = await auto(once.bytes); // the 1 GiB set aside before would have sent this one to copies in each pass
        expect(roomy.notices).toEqual([]);
        expect(roomy.losses).toEqual(once.losses);
        const middle = await auto(perPass.bytes);
        expect(middle.done).toMatchObject({ frozen_backward: "matmul", recompute: false });
        expect(middle.notices).toEqual([expect.stringMatching(/would not fit in the .* GiB of memory available: the frozen weights' copies are made in each pass instead/)]);
        expect(middle.losses).toEqual(perPass.losses);
        // (copies in each pass with the first 3 of the 4 layers recomputed would fit too, but cost about
        // 1.12 + 0.4 x 3/4 of a step against 1.4: step_time in pass.cpp)
        const tight = await auto(onceRecomputed.bytes);
        expect(tight.done).toMatchObject({ frozen_backward: "cached", recompute: true });
        expect(tight.notices).toEqual([
            expect.stringMatching(/: the frozen weights' copies are made in each pass instead/),
            expect.stringMatching(/: each layer's activations are recomputed in the backward pass instead .*, with the frozen weights' copies made once$/)
        ]);
        expect(tight.losses).toEqual(onceRecomputed.losses);
        // the model and its copies alone over the memory: the copies in each pass from the start, said before loading
        const short = await train("plans-short", ["--memory-available", String(Math.floor(fs.statSync(model).size / MiB) + 1)]);
        expect(short.done).toMatchObject({ frozen_backward: "matmul", recompute: true });
        expect(short.notices).toEqual([
            expect.stringMatching(/^the frozen weights' transposed copies \(.* GiB\) with the model \(.* GiB\) would not fit in the .* GiB of memory available: the copies are made in each pass instead/),
            expect.stringMatching(/: each layer's activations are recomputed in the backward pass instead \(--recompute on: about one more forward pass of time\)$/)
        ]);
    });

    it("on a CPU, auto recomputes the first layers' activations, as many as the memory needs, before every layer's: the same losses in a compute buffer between the two", async () => {
        // 8 layers, the copies made in each pass (one copies' way): kept, the first layers recomputed, all.
        // A vocabulary of 16k with the whole loss at once (--backward-slice 2^30): buffers beside the
        // layers' activations, so that the first count, each layer's share of the whole, falls short
        const model = path.join(dir, "layers-8.gguf");
        await writeSyntheticModel({ arch: "llama", nEmbd: 256, layers: 8, heads: 4, ff: 768, ctx: 256, vocab: 16384, out: model });
        const long = await samplesFile(dir, fullContextSamples(8), "layers.bin");
        const train = (name: string, args: string[]) => trainPlanned(model, long, name, ["--frozen-backward", "matmul", "--backward-slice", String(2 ** 30), ...args]);
        const kept = await train("layers-kept", ["--recompute", "off"]);
        const all = await train("layers-all", ["--recompute", "12"]); // a count of L or more: every layer's
        const three = await train("layers-three", ["--recompute", "3"]); // by hand
        expect([kept.done.recomputed_layers, three.done.recomputed_layers, all.done.recomputed_layers]).toEqual([0, 3, 8]);
        expect(three.bytes).toBeLessThan(kept.bytes);
        expect(three.bytes).toBeGreaterThan(all.bytes);
        expect(three.losses).toEqual(kept.losses);
        // held beside the model all along and counted: the KV cache (2 MiB here), the adapter's gradients and moments
        expect(kept.held).toBeGreaterThan(fs.statSync(model).size + 2 ** 21);
        const MiB = 2 ** 20;
        const between = Math.round((kept.bytes + all.bytes) / 2 / MiB);
        const some = await train("layers-some", ["--memory-available", String(between)]);
        // the first count declined too: the next from the saving per layer the two graphs measured
        const firstLayers = /would not fit in the .* GiB of memory available: the activations of the first ([1-7]) of the 8 layers are recomputed in the backward pass instead \(about \d+% of one more forward pass of time\)$/;
        expect(some.notices).toEqual([expect.stringMatching(firstLayers), expect.stringMatching(firstLayers)]);
        const [first, n] = some.notices.map((notice) => Number(firstLayers.exec(notice)![1]));
        expect(n).toBeGreaterThan(first!);
        expect(some.done).toMatchObject({ frozen_backward: "matmul", recompute: true, recomputed_layers: n });
        expect(some.bytes).toBeLessThanOrEqual(between * MiB);
        expect(some.bytes).toBeGreaterThan(all.bytes);
        expect(some.losses).toEqual(kept.losses);
        // below what every layer's recomputing needs, with less than the first layers: all of them
        const short = await train("layers-short", ["--memory-available", String(Math.ceil(all.bytes / MiB) + 1)]);
        expect(short.done).toMatchObject({ recomputed_layers: 8 });
        expect(short.losses).toEqual(kept.losses);
    });

    it("under a 1 GB address-space limit the trainer plans with what it leaves, and a training graph beyond it is one line and exit 1, not a crash", async () => {
        const model = path.join(dir, "vocab-64k.gguf");
        await writeSyntheticModel({ arch: "llama", nEmbd: 64, layers: 1, heads: 4, ff: 128, ctx: 256, vocab: 65536, out: model });
        const long = await samplesFile(dir, fullContextSamples(16), "long.bin");
        // --backward-slice 2^30: the whole micro-batch's logits at once (0.54 GB at 2048 tokens)
        const limited = (batchTokens: number) => runTrainer(["--base", model, "--data", long, "--out", path.join(dir, `vocab-64k-${batchTokens}.gguf`),
            "--ctx", "256", "--batch", String(batchTokens / 256), "--batch-tokens", String(batchTokens), "--steps", "1", "--backward-slice", String(2 ** 30)],
            { addressSpaceKb: 1_000_000 });
        const fits = await limited(256); // the limit leaves room for the trainer itself (it needs 0.5-0.7 GB)
        expect(fits.exitCode, fits.stderr).toBe(0);
        // the memory planned with is what the limit leaves, less the address space already held
        const planned = Number(fits.events.find((e) => e.event === "start")!.memory_available_bytes);
        expect(planned).toBeLessThan(1_000_000 * 1024);
        expect(planned).toBeGreaterThan(0);
        // 2048 tokens: the graph fits, the CPU backend's work buffer (new[] as it computes) does not;
        // 4096: the graph's compute buffer does not fit, so it is built again with recomputed
        // activations (patch 0021), and that one does not fit either (ggml's scheduler reports it, patch 0011)
        for (const [tokens, where, advice] of [[2048, "its work buffer in host memory", " or use --recompute on"], [4096, "its size is in the log above", ""]] as const) {
            const tooLarge = await limited(tokens);
            expect(tooLarge.exitCode, tooLarge.stderr).toBe(1);
            expect(tooLarge.stderr.trim().split("\n").at(-1)).toBe(
                `autoact-train: out of memory: the training graph of a ${tokens}-token micro-batch does not fit (${where}); lower --batch-tokens${advice}`);
            expect(tooLarge.events.at(-1)).toMatchObject({ event: "error", kind: "runtime" });
            expect(tooLarge.events.some((e) => e.event === "notice" && /activations .* are recomputed/.test(String(e.message)))).toBe(tokens === 4096);
        }
    });

    it("under an address-space limit too small for llama.cpp's own allocations the trainer stops with one line and exit 1, never an abort", async () => {
        const model = path.join(dir, "vocab-64k-small.gguf");
        await writeSyntheticModel({ arch: "llama", nEmbd: 64, layers: 1, heads: 4, ff: 128, ctx: 256, vocab: 65536, out: model });
        const samples = await samplesFile(dir, fullContextSamples(1), "one-long.bin");
        // where the limit falls among llama.cpp's allocations decides which fails: a buffer (its
        // own error) or a graph's bookkeeping in ggml_init, whose failed check would abort (SIGABRT,
        // a debugger's backtrace on stdout) but for the trainer's abort callback (here: 150, 250
        // and 300 MB)
        for (const kb of [150_000, 200_000, 250_000, 300_000]) {
            const run = await runTrainer(["--base", model, "--data", samples, "--out", path.join(dir, `small-${kb}.gguf`), "--ctx", "256",
                "--batch", "1", "--steps", "1"], { addressSpaceKb: kb });
            expect(run.exitCode, `${kb} KB: ${run.stderr}`).toBe(1);
            const last = run.stderr.trim().split("\n").at(-1)!;
            expect(last, `${kb} KB`).toMatch(/^autoact-train: out of memory: .*; lower --batch-tokens/);
            expect(run.events.at(-1), `${kb} KB`).toMatchObject({ event: "error", kind: "runtime" });
            expect(run.stdout, `${kb} KB`).not.toMatch(/GGML_ASSERT|#\d+ +0x/);
            expect(fs.existsSync(path.join(dir, `small-${kb}.gguf`))).toBe(false);
        }
    });

    it("LoRA dropout: every keep-mask keeps 1 - p of its entries, each drawn independently of its neighbour", async () => {
        const out = path.join(dir, "dropout.grads");
        const run = await runTrainer(["--base", base, "--data", data, "--out", path.join(dir, "dropout.gguf"), "--ctx", "64",
            "--batch", "8", "--grad-dump", out, "--lora-dropout", "0.3"]);
        expect(run.exitCode, run.stderr).toBe(0);
        const masks = run.events.find((e) => e.event === "grad_dump")!.dropout_masks as { n: number; kept: number; neighbours_equal: number }[];
        expect(masks.length).toBeGreaterThan(0); // one per input size of the LoRA branches
        for (const mask of masks) {
            // over thousands of entries: within ~5 standard deviations
            expect(mask.n).toBeGreaterThan(4000);
            expect(Math.abs(mask.kept - 0.7), JSON.stringify(mask)).toBeLessThan(0.035);
            expect(Math.abs(mask.neighbours_equal - (0.3 ** 2 + 0.7 ** 2)), JSON.stringify(mask)).toBeLessThan(0.04);
        }
        const none = await runTrainer(["--base", base, "--data", data, "--out", path.join(dir, "no-dropout.gguf"), "--ctx", "64",
            "--batch", "8", "--grad-dump", out]);
        expect(none.events.find((e) => e.event === "grad_dump")!.dropout_masks).toEqual([]);
    });

    it("a --backward-slice too small for the training graph's room is a one-line input error, not an abort", async () => {
        const out = path.join(dir, "slice1.gguf");
        const run = await runTrainer(["--base", base, "--data", data, "--out", out, "--ctx", "64", "--batch", "4",
            "--frozen-backward", "matmul", "--backward-slice", "1"]);
        expect(run.exitCode).toBe(2);
        expect(run.stderr.trim()).toMatch(/^autoact-train: --backward-slice 1 cuts this model's weights into \d+ more slices than the training graph has room for \(about \d+\): raise it$/);
        expect(fs.existsSync(out)).toBe(false);
        expect(fs.existsSync(`${out}.ckpt`)).toBe(false);
    });

    it("--profile times every node of the training passes after the first step, with the same losses", async () => {
        const common = ["--base", base, "--data", data, "--ctx", "64", "--steps", "3", "--lr", "1e-2", "--batch", "4"];
        const plain = await runTrainer([...common, "--out", path.join(dir, "plain.gguf")]);
        const profiled = await runTrainer([...common, "--out", path.join(dir, "profiled.gguf"), "--profile"]);
        expect(profiled.exitCode, profiled.stderr).toBe(0);
        expect(stepLosses(profiled)).toEqual(stepLosses(plain));
        const profile = profiled.events.find((e) => e.event === "profile")!;
        // the micro-batches of steps 2 and 3, not those of the first
        expect(profile.passes).toBeGreaterThan(0);
        expect(profile.passes).toBeLessThan(profiled.events.find((e) => e.event === "done")!.passes);
        expect(profile.ms_per_pass).toBeGreaterThan(0);
        expect(profile.top.some((n: { node: string }) => n.node.startsWith("MUL_MAT"))).toBe(true);
        expect(profile.top.some((n: { node: string }) => n.node.includes("grad for"))).toBe(true);
    });

    it("mixed precision: 16-bit input gradients (BF16 on a CPU that multiplies it natively, else F16) keep the training loss within 1e-2 of F32, BF16 forward matmuls (on) within 2e-2; auto is the former, with BF16 only", async () => {
        const common = ["--base", base, "--data", data, "--ctx", "64", "--steps", "8", "--lr", "1e-2", "--batch", "4"];
        const f32 = await runTrainer([...common, "--out", path.join(dir, "mp-off.gguf"), "--mixed-precision", "off"]);
        const mixed = await runTrainer([...common, "--out", path.join(dir, "mp-on.gguf"), "--mixed-precision", "on"]);
        const auto = await runTrainer([...common, "--out", path.join(dir, "mp-auto.gguf")]);
        for (const run of [f32, mixed, auto]) expect(run.exitCode, run.stderr).toBe(0);
        expect([f32.events[0]!.mixed_precision, f32.events[0]!.input_grad_type]).toEqual([false, "f32"]);
        expect(mixed.events[0]!.mixed_precision).toBe(true);
        expect(["bf16", "f16"]).toContain(mixed.events[0]!.input_grad_type);
        // with BF16, `on` puts the forward matmuls on BF16 copies too; auto keeps the model's own loss
        expect(mixed.events[0]!.forward_bf16).toBe(mixed.events[0]!.input_grad_type === "bf16");
        expect(auto.events[0]!.forward_bf16).toBe(false);
        // on a CPU, auto takes 16 bits only where they are faster (BF16)
        expect(auto.events[0]!.input_grad_type).toBe(mixed.events[0]!.input_grad_type === "bf16" ? "bf16" : "f32");
        const a = stepLosses(f32);
        expect(a.at(-1)!).toBeLessThan(a[0]!);
        // lr 1e-2 takes the loss from ~6 to ~2 in 8 steps: the runs' paths drift apart as they go
        const onLimit = mixed.events[0]!.forward_bf16 ? 2e-2 : 1e-2;
        stepLosses(mixed).forEach((loss, i) => expect(Math.abs(loss - a[i]!), `on, step ${i + 1}`).toBeLessThan(onLimit));
        stepLosses(auto).forEach((loss, i) => expect(Math.abs(loss - a[i]!), `auto, step ${i + 1}`).toBeLessThan(1e-2));
    });
});
