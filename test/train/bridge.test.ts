import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAnyTable, writeTable } from "../../src/data/table-io.js";
import { metadataValue, readGgufInfo, readTensorValues } from "../../src/gguf/reader.js";
import {
    decodeTrainingSamples, encodeTrainingSamples, ensureNativeBuild, loadTrainingRows, rowsForAgent, trainAdapter, trainerArgs, trainOptions
} from "../../src/train/index.js";
import { InputError } from "../../src/util/errors.js";
import { BUILD_TIMEOUT_MS, THREADS, hasStories, nativeBuild, samplesFile, stories260K, tempDir, tinyModel } from "./helpers.js";
import { runCliProcess } from "../helpers/cli.js";

describe("training data", () => {
    let dir: string;
    beforeAll(() => {
        dir = tempDir("train-data");
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("round-trips the trainer's samples file", () => {
        const samples = [{ tokens: [1, 2, 300000], mask: [0, 1, 1] }, { tokens: [], mask: [] }];
        expect(decodeTrainingSamples(encodeTrainingSamples(samples))).toEqual(samples);
        expect(() => encodeTrainingSamples([{ tokens: [1, 2], mask: [1] }])).toThrow(InputError);
        expect(() => encodeTrainingSamples([{ tokens: [1], mask: [2] }])).toThrow(/mask value 2/);
    });

    it("reads JSONL, JSON and samples.arrow rows and filters by agent", async () => {
        const jsonl = path.join(dir, "rows.jsonl");
        fs.writeFileSync(jsonl, '{"input":"a","output":"b","agent":"plan"}\n\n{"input":"c","output":"d"}\n');
        const rows = await loadTrainingRows(jsonl);
        expect(rows).toEqual([{ input: "a", output: "b", agent: "plan" }, { input: "c", output: "d" }]);
        expect(rowsForAgent(rows, "tool")).toEqual([{ input: "c", output: "d" }]);

        const json = path.join(dir, "rows.json");
        fs.writeFileSync(json, JSON.stringify([{ input: "x", output: "y" }]));
        expect(await loadTrainingRows(json)).toEqual([{ input: "x", output: "y" }]);

        const arrow = path.join(dir, "samples.arrow");
        await writeTable(arrow, "samples", [{ id: "1", agent: "reflect", trajectory_id: "t", step: 0, kind: "reflection", input: "in", output: "out" }]);
        expect(await loadTrainingRows(arrow)).toEqual([{ input: "in", output: "out", agent: "reflect" }]);
    });

    it("reads JSON and JSONL written with a UTF-8 BOM (Windows editors, PowerShell) and an exported alpaca .json", async () => {
        const json = path.join(dir, "bom.json");
        fs.writeFileSync(json, `\uFEFF${JSON.stringify([{ instruction: "x", input: "", output: "y" }], null, 2)}`);
        expect(await loadTrainingRows(json)).toEqual([{ input: "x", output: "y" }]);
        const jsonl = path.join(dir, "bom.jsonl");
        fs.writeFileSync(jsonl, `\uFEFF${JSON.stringify({ input: "a", output: "b" })}\n`);
        expect(await loadTrainingRows(jsonl)).toEqual([{ input: "a", output: "b" }]);
    });

    it("names the file and line of a bad row", async () => {
        const bad = path.join(dir, "bad.jsonl");
        fs.writeFileSync(bad, '{"input":"a","output":"b"}\n{"input":"a"}\n');
        await expect(loadTrainingRows(bad)).rejects.toThrow(/bad\.jsonl:2: field "output" must be a string/);
        const broken = path.join(dir, "broken.jsonl");
        fs.writeFileSync(broken, "{nope\n");
        await expect(loadTrainingRows(broken)).rejects.toThrow(/broken\.jsonl:1: invalid JSON/);
    });

    it("maps options onto the trainer's flags and checks them before it runs", async () => {
        const args = trainerArgs({ trainer: "t", base: "b.gguf", samplesFile: "s.bin", out: "o.gguf", rank: 4, targets: ["attn_q", "ffn_up"], threads: 1, resume: true });
        expect(args.slice(0, 6)).toEqual(["--base", "b.gguf", "--data", "s.bin", "--out", "o.gguf"]);
        expect(args.join(" ")).toContain("--rank 4 ");
        expect(args.join(" ")).toContain("--targets attn_q,ffn_up ");
        expect(args.slice(-3)).toEqual(["--threads", "1", "--resume"]);
        // an adapter trained further keeps its shape: only the shape flags given go to the trainer (it refuses a contradiction)
        const further = trainerArgs({ trainer: "t", base: "b.gguf", samplesFile: "s.bin", out: "o.gguf", adapterIn: "in.gguf", alpha: 8 }).join(" ");
        expect(further).toContain("--adapter-in in.gguf ");
        expect(further).toContain("--alpha 8 ");
        expect(further).not.toMatch(/--rank|--targets/);
        await expect(trainAdapter({ trainer: process.execPath, base: "b", samplesFile: "s", out: "o", rank: 0, loraDropout: 2 }))
            .rejects.toThrow(new InputError("rank must be a whole number from 1 to 4096, got 0; loraDropout must be a number from 0 to 0.9, got 2"));
    });
});

describe("native build", () => {
    it("builds once, then a second build with nothing changed takes seconds", async () => {
        const first = await nativeBuild();
        console.log(`native build (first call in this process): ${first.seconds.toFixed(1)} s`);
        expect(fs.existsSync(first.trainer)).toBe(true);
        expect(fs.existsSync(first.llamaBench)).toBe(true);
        const second = await ensureNativeBuild({ jobs: 2 });
        expect(second.seconds).toBeLessThan(10);
        const help = await execa(second.trainer, ["--help"], { reject: false });
        expect(help.exitCode).toBe(0);
        expect(help.stderr).toMatch(/--rank .*\[8\]/);
    }, BUILD_TIMEOUT_MS);

    it("knows every flag of the options table (src/train/options.ts)", async () => {
        const { trainer } = await nativeBuild();
        const help = await execa(trainer, ["--help"], { reject: false });
        const flags = new Set([...help.stderr.matchAll(/^\s+(--[\w-]+)/gm)].map((m) => m[1]));
        expect(trainOptions.map((o) => o.flag).filter((flag) => !flags.has(flag))).toEqual([]);
    }, BUILD_TIMEOUT_MS);
});

describe("trainAdapter", () => {
    let dir: string;
    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-bridge");
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("streams steps and returns the curve; an abort checkpoints and a rerun resumes", async () => {
        const { trainer } = await nativeBuild();
        const base = await tinyModel(dir);
        const samples = Array.from({ length: 3 }, (_, s) => ({ tokens: [40 + s, 41, 42, 43, 44, 45, 46, 47], mask: [0, 0, 0, 1, 1, 1, 1, 1] }));
        const data = await samplesFile(dir, samples);
        const out = path.join(dir, "a.gguf");
        const controller = new AbortController();
        const seen: number[] = [];
        await expect(trainAdapter({
            trainer, base, samplesFile: data, out, steps: 400, threads: THREADS, ctx: 32, forwardSignals: false,
            signal: controller.signal,
            onStep: (step) => {
                seen.push(step.step);
                if (step.step === 3)
                    controller.abort();
            }
        })).rejects.toMatchObject({ exitCode: 130 });
        expect(fs.existsSync(out)).toBe(false);
        // a checkpoint resumes only the run it came from: other steps change the schedule
        await expect(trainAdapter({ trainer, base, samplesFile: data, out, steps: 8, threads: THREADS, ctx: 32, resume: true }))
            .rejects.toThrow(/total_steps=400.*total_steps=8/);
        const result = await trainAdapter({ trainer, base, samplesFile: data, out, steps: 400, threads: THREADS, ctx: 32, resume: true });
        expect(result.start!.start_step).toBeGreaterThanOrEqual(3);
        expect(result.curve.at(-1)!.step).toBe(400);
        expect(result.done.steps).toBe(400);
        expect(fs.existsSync(out)).toBe(true);
    });

    it("a trainer killed without a word (SIGKILL: the out-of-memory killer) is one line that says what most likely happened and what is kept", async () => {
        const { trainer } = await nativeBuild();
        const base = await tinyModel(dir);
        const data = await samplesFile(dir, Array.from({ length: 3 }, (_, s) => ({ tokens: [40 + s, 41, 42, 43, 44, 45], mask: [0, 0, 0, 1, 1, 1] })));
        // the real trainer, its pid written first (exec keeps it), so that the test can kill it as the kernel would
        const pidFile = path.join(dir, "pid");
        const wrapper = path.join(dir, "trainer.sh");
        fs.writeFileSync(wrapper, `#!/bin/sh\necho $$ > '${pidFile}'\nexec '${trainer}' "$@"\n`, { mode: 0o755 });
        const out = path.join(dir, "killed.gguf");
        const killed = trainAdapter({
            trainer: wrapper, base, samplesFile: data, out, steps: 400, threads: THREADS, ctx: 32, checkpointEvery: 1, forwardSignals: false,
            onStep: (step) => {
                if (step.step === 3)
                    process.kill(Number(fs.readFileSync(pidFile, "utf8")), "SIGKILL");
            }
        });
        await expect(killed).rejects.toThrow(/^autoact-train was killed \(SIGKILL\) after step [3-9]\d*, most often by the kernel for want of memory \(lower --batch-tokens or --ctx, or use --recompute on\); its checkpoint of step [2-9]\d* is kept: run the same command again to continue from it$/);
        expect(fs.existsSync(`${out}.ckpt`)).toBe(true);
        expect(fs.existsSync(out)).toBe(false);
    });
});

describe.skipIf(!hasStories)("autoact train (CLI, end to end on stories260K)", () => {
    let dir: string;
    beforeAll(async () => {
        await nativeBuild();
        dir = tempDir("train-cli");
    }, BUILD_TIMEOUT_MS);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("trains every agent of a JSONL file into <agent>.gguf and train-<agent>.arrow", async () => {
        const data = path.join(dir, "rows.jsonl");
        const rows = [
            { input: "Once upon a time", output: "there was a cat.", agent: "plan" },
            { input: "The dog", output: "ran to the park.", agent: "plan" },
            { input: "Lily saw", output: "a big tree.", agent: "tool" }
        ];
        fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n"));
        const out = path.join(dir, "out");
        const run = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "all", "--out", out,
            "--steps", "5", "--ctx", "128", "--threads", String(THREADS)]);
        expect(run.code, run.stderr).toBe(0);
        for (const agent of ["plan", "tool"]) {
            const info = await readGgufInfo(path.join(out, `${agent}.gguf`));
            expect(metadataValue(info, "autoact.agent")).toBe(agent);
            const curve = await readAnyTable(path.join(out, `train-${agent}.arrow`));
            expect(curve.rows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
            expect(curve.rows[0]).toMatchObject({ agent });
            expect(Object.keys(curve.rows[0]!)).toEqual(expect.arrayContaining(["loss", "eval_loss", "lr", "tokens_per_s", "elapsed_s", "peak_rss_bytes"]));
        }
        const bad = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "reflect", "--out", out]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/no rows for agent "reflect"/);
    });

    it("--adapter-in trains an adapter further: its rank, alpha and targets kept, a flag that contradicts them refused", async () => {
        const data = path.join(dir, "further.jsonl");
        fs.writeFileSync(data, JSON.stringify({ input: "Once upon a time", output: "there was a cat.", agent: "plan" }));
        const first = path.join(dir, "first");
        const common = ["train", "--base", stories260K, "--data", data, "--agent", "plan", "--ctx", "64", "--threads", String(THREADS)];
        const trained = await runCliProcess([...common, "--out", first, "--steps", "3", "--rank", "4", "--alpha", "8", "--targets", "attn_k", "--lr", "0.01"]);
        expect(trained.code, trained.stderr).toBe(0);
        const given = path.join(first, "plan.gguf");
        const further = path.join(dir, "further");
        // lr 0: the adapter written is the one given, value for value (a fresh one's lora_b would be zeros)
        const run = await runCliProcess([...common, "--out", further, "--adapter-in", given, "--steps", "1", "--lr", "0"]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toMatch(/rank 4, alpha 8, attn_k\)/);
        const [before, after] = [await readGgufInfo(given), await readGgufInfo(path.join(further, "plan.gguf"))];
        expect(after.tensors.map((t) => t.name)).toEqual(before.tensors.map((t) => t.name));
        for (const t of before.tensors) {
            const values = await readTensorValues(before, t.name);
            expect(await readTensorValues(after, t.name)).toEqual(values);
            if (t.name.endsWith(".lora_b"))
                expect(values.some((v) => v !== 0), t.name).toBe(true);
        }
        expect(JSON.parse(String(metadataValue(after, "autoact.train_config")))).toMatchObject({ rank: 4, alpha: 8, targets: ["attn_k"] });

        const contradicted = await runCliProcess([...common, "--out", further, "--adapter-in", given, "--rank", "8", "--no-resume"]);
        expect(contradicted.code).toBe(2);
        expect(contradicted.stderr).toMatch(/--rank 8: the adapter .*plan\.gguf \(--adapter-in\) has rank 4/);
        const missing = await runCliProcess([...common, "--out", further, "--adapter-in", path.join(dir, "nope.gguf")]);
        expect(missing.code).toBe(2);
        expect(missing.stderr).toMatch(/--adapter-in adapter file not found: .*nope\.gguf/);
    });

    it("--memory-available: the trainer's choices for a machine short of memory reach the user as warnings", async () => {
        const data = path.join(dir, "short.jsonl");
        fs.writeFileSync(data, JSON.stringify({ input: "Once upon a time", output: "there was a cat.", agent: "plan" }));
        // the machine's memory taken as 1 MiB
        const short = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "plan", "--ctx", "64",
            "--threads", String(THREADS), "--out", path.join(dir, "short"), "--steps", "1", "--memory-available", "1"]);
        expect(short.code, short.stderr).toBe(0);
        expect(short.stderr).toMatch(/plan: warning: the frozen weights' transposed copies .* would not fit in the 0\.00 GiB of memory available/);
        const inRun = await runCliProcess(["train", "--run-dir", dir, "--memory-available", "100"]);
        expect(inRun.code).toBe(2);
        expect(inRun.stderr).toMatch(/--memory-available: for training on its own/);
    });

    it("--agent all stopped at its second agent, run again, takes the first up at its last step (not again); the curves are whole and the first losses told", async () => {
        const data = path.join(dir, "two.jsonl");
        fs.writeFileSync(data, [{ input: "Once upon a time", output: "there was a cat.", agent: "plan" }, { input: "Lily saw", output: "a big tree.", agent: "tool" }]
            .map((r) => JSON.stringify(r)).join("\n"));
        const out = path.join(dir, "stopped");
        const args = ["train", "--base", stories260K, "--data", data, "--agent", "all", "--out", out, "--steps", "300", "--ctx", "64", "--threads", String(THREADS)];
        const stopped = await runCliProcess(args, { interrupt: { when: /training tool/, signal: "SIGINT" } });
        expect(stopped.code, stopped.stderr).toBe(130);
        const again = await runCliProcess(args);
        expect(again.code, again.stderr).toBe(0);
        expect(again.stderr).not.toMatch(/^plan \d+\/300/m); // no plan step trained again
        for (const agent of ["plan", "tool"]) {
            expect(again.stdout).toMatch(new RegExp(`^${agent}: .* \\(300 steps, loss \\d+\\.\\d+ -> \\d+\\.\\d+`, "m"));
            const curve = await readAnyTable(path.join(out, `train-${agent}.arrow`));
            expect(curve.rows.map((r) => r.step)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
        }
        expect(fs.readdirSync(out).sort()).toEqual(["plan.gguf", "tool.gguf", "train-plan.arrow", "train-tool.arrow"]);
        // stopped at the second agent again, then run on other settings: the first is trained anew, not refused
        const otherOut = path.join(dir, "stopped-other");
        const argsOther = args.map((a) => (a === out ? otherOut : a));
        expect((await runCliProcess(argsOther, { interrupt: { when: /training tool/, signal: "SIGINT" } })).code).toBe(130);
        const changed = await runCliProcess([...argsOther, "--lr", "0.0002"]);
        expect(changed.stderr).toMatch(/^training plan: .* 300 steps$/m);
        // (the second, stopped part-way, is the one whose checkpoint asks for the same settings)
        expect(changed.stderr).toMatch(/tool\.gguf\.ckpt: the checkpoint was made with lr=0\.0001, this run has lr=0\.0002/);

        // A run at another lr killed outright (the trainer checkpoints as its parent dies), then
        // resumed: its curve holds no row of the earlier run's.
        const other = [...args.map((a, i) => (args[i - 1] === "--agent" ? "plan" : a)), "--lr", "0.00001"];
        const killed = await runCliProcess(other, { interrupt: { when: /training plan/, signal: "SIGKILL" } });
        expect(killed.code).toBe(null);
        await new Promise((resolve) => setTimeout(resolve, 1000)); // the orphaned trainer's checkpoint
        const resumed = await runCliProcess(other);
        expect(resumed.code, resumed.stderr).toBe(0);
        const curve = await readAnyTable(path.join(out, "train-plan.arrow"));
        expect(curve.rows.length).toBeGreaterThan(0);
        expect(curve.rows.every((r) => (r.lr as number) <= 0.00001)).toBe(true);
    });

    it("a hang-up (a closed terminal) stops autoact train as an interrupt does: the trainer checkpoints, one line says so", async () => {
        const data = path.join(dir, "hup.jsonl");
        fs.writeFileSync(data, JSON.stringify({ input: "Once upon a time", output: "there was a cat.", agent: "plan" }));
        const out = path.join(dir, "hup");
        const hung = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "plan", "--out", out, "--steps", "3000", "--ctx", "64", "--threads", String(THREADS)],
            { interrupt: { when: /training plan/, signal: "SIGHUP" } });
        expect(hung.code, hung.stderr).toBe(130);
        expect(hung.stderr).toMatch(/training of .*plan\.gguf interrupted after step \d+; the checkpoint is saved/);
        expect(fs.existsSync(path.join(out, "plan.gguf.ckpt"))).toBe(true);
    });

    it("says so when a sample runs past the positions the base model was trained on", async () => {
        const story = "Once upon a time there was a little girl named Lily who loved to play in the park with her dog. ";
        const data = path.join(dir, "long.jsonl");
        fs.writeFileSync(data, JSON.stringify({ input: story.repeat(100), output: "She smiled.", agent: "plan" }));
        const run = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "plan", "--out", path.join(dir, "long"), "--steps", "1", "--ctx", "4096", "--threads", String(THREADS)]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toMatch(/^plan: warning: the longest sample has \d+ tokens, more than the \d+ the base model was trained on/m);
    });

    it("fits rows longer than --ctx as the pipeline does: the prompt cut on the left, the response whole; says how many", async () => {
        const story = "Once upon a time there was a little girl named Lily who loved to play in the park with her dog. ";
        const rows = [
            { input: story.repeat(12), output: "She smiled.", agent: "plan" }, // ~300 prompt tokens
            { input: "The dog", output: "ran to the park.", agent: "plan" },
            { input: "Tom said", output: story.repeat(12), agent: "plan" } // its response alone is longer than 128
        ];
        const data = path.join(dir, "long.jsonl");
        fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n"));
        const out = path.join(dir, "out-long");
        const run = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "plan", "--out", out,
            "--steps", "2", "--ctx", "128", "--threads", String(THREADS)]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain("plan: 1 samples cut to fit the context (responses whole; on the left of the prompt), 1 left out (the response alone is longer)");
        expect(run.stderr).toMatch(/training plan: 2 samples/);
        expect(fs.existsSync(path.join(out, "plan.gguf"))).toBe(true);

        // nothing left to train: one line, exit 2, no adapter
        fs.writeFileSync(data, JSON.stringify(rows[2]));
        const none = await runCliProcess(["train", "--base", stories260K, "--data", data, "--agent", "plan", "--out", path.join(dir, "out-none"), "--ctx", "128"]);
        expect(none.code).toBe(2);
        expect(none.stderr.trim()).toBe("autoact: agent plan: every sample's response alone is longer than the context length 128 (raise --ctx)");
        expect(fs.existsSync(path.join(dir, "out-none", "plan.gguf"))).toBe(false);
    });
});
