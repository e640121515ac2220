import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { readTable, writeTable } from "../../src/data/table-io.js";
import { readGgufInfo, readTensorValues } from "../../src/gguf/reader.js";
import { findNativeBuild } from "../../src/train/native-build.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";

const tinyModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const haveTrainer = fs.existsSync(tinyModel) && findNativeBuild("cpu") != null;
if (!haveTrainer)
    console.warn("skipping the train-stage resume test: stories260K or the native trainer (npm run build:native) is absent");

const agents = ["plan", "tool", "reflect"] as const;

/** A run directory ready for its train stage: config.yaml and a samples.arrow for every agent. */
async function trainRunDir(settings: string): Promise<string> {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-resume-"));
    fs.writeFileSync(path.join(runDir, "config.yaml"), `name: resume\nmodel:\n  path: ${tinyModel}\n  threads: 1\ntrain:\n${settings}`);
    const rows = agents.flatMap((agent) => Array.from({ length: 4 }, (_, i) => ({
        id: `${agent}-${i}`, agent, trajectory_id: `t${i}`, step: i, kind: "thought",
        input: `Question: what is ${i} plus ${i}? Answer as the ${agent} agent.`, output: `It is ${2 * i}.`
    })));
    await writeTable(path.join(runDir, "samples.arrow"), "samples", rows);
    return runDir;
}

async function adapterValues(file: string): Promise<Map<string, Float32Array>> {
    const info = await readGgufInfo(file);
    const values = new Map<string, Float32Array>();
    for (const tensor of info.tensors)
        values.set(tensor.name, await readTensorValues(info, tensor.name));
    return values;
}

const leftovers = (runDir: string) => fs.readdirSync(path.join(runDir, "adapters")).filter((f) => f.endsWith(".ckpt") || f.endsWith(".samples.bin"));

describe.skipIf(!haveTrainer)("the pipeline's train stage keeps and resumes its adapters", () => {
    const settings = "  steps: 30\n  context: 128\n  rank: 2\n  targets: [attn_q]\n  lr: 0.001\n";

    it("a SIGKILLed train stage resumes from its checkpoint and ends with the adapters of a straight run (within 1e-6)", { timeout: 600_000 }, async () => {
        const straight = await trainRunDir(settings);
        const first = await runCliProcess(["train", "--run-dir", straight]);
        expect(first.code, first.stderr).toBe(0);
        expect(leftovers(straight)).toEqual([]);

        const killed = await trainRunDir(settings);
        const child = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli/main.js"), "train", "--run-dir", killed], {
            stdio: "ignore", detached: true, env: { ...process.env, CI: "1" }
        });
        // Kill the whole group (the CLI and its trainer) once the tool agent has checkpointed:
        // the plan adapter is finished by then, the tool adapter half-trained.
        const checkpoint = path.join(killed, "adapters", "tool.gguf.ckpt");
        const deadline = Date.now() + 300_000;
        while (!fs.existsSync(checkpoint) && child.exitCode == null && Date.now() < deadline)
            await new Promise((resolve) => setTimeout(resolve, 10));
        process.kill(-child.pid!, "SIGKILL");
        await new Promise((resolve) => (child.exitCode != null || child.signalCode != null ? resolve(null) : child.once("exit", resolve)));
        expect(fs.existsSync(path.join(killed, "adapters", "plan.gguf"))).toBe(true);
        expect(fs.existsSync(path.join(killed, "adapters", "tool.gguf"))).toBe(false);
        expect(fs.existsSync(checkpoint)).toBe(true);

        const resumed = await runCliProcess(["train", "--run-dir", killed]);
        expect(resumed.code, resumed.stderr).toBe(0);
        expect(resumed.stderr).toMatch(/train: plan adapter up to date/);
        expect(leftovers(killed)).toEqual([]);
        for (const agent of agents) {
            const a = await adapterValues(path.join(straight, "adapters", `${agent}.gguf`));
            const b = await adapterValues(path.join(killed, "adapters", `${agent}.gguf`));
            expect([...b.keys()]).toEqual([...a.keys()]);
            let maxDiff = 0;
            for (const [name, values] of a) {
                const other = b.get(name)!;
                for (let i = 0; i < values.length; i++)
                    maxDiff = Math.max(maxDiff, Math.abs(values[i]! - other[i]!));
            }
            expect(maxDiff, agent).toBeLessThanOrEqual(1e-6);
        }

        // A changed setting makes every adapter stale: retrained, not reused.
        const before = fs.readFileSync(path.join(killed, "adapters", "plan.gguf"));
        const config = path.join(killed, "config.yaml");
        fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace("lr: 0.001", "lr: 0.002"));
        const changed = await runCliProcess(["train", "--run-dir", killed]);
        expect(changed.code, changed.stderr).toBe(0);
        expect(changed.stderr).not.toMatch(/up to date/);
        expect(fs.readFileSync(path.join(killed, "adapters", "plan.gguf")).equals(before)).toBe(false);
        expect(leftovers(killed)).toEqual([]);
    });

    it("`autoact train --out DIR` leaves no checkpoint behind, so a rerun with other settings trains all its steps", { timeout: 300_000 }, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-rerun-"));
        const data = path.join(dir, "rows.jsonl");
        fs.writeFileSync(data, Array.from({ length: 4 }, (_, i) => JSON.stringify({ input: `What is ${i} plus ${i}?`, output: `It is ${2 * i}.` })).join("\n") + "\n");
        const out = path.join(dir, "out");
        const train = (...extra: string[]) => runCliProcess(["train", "--base", tinyModel, "--data", data, "--agent", "plan", "--out", out,
            "--steps", "20", "--rank", "2", "--targets", "attn_q", "--ctx", "128", "--threads", "1", ...extra]);
        const first = await train("--lr", "0.001");
        expect(first.code, first.stderr).toBe(0);
        expect(fs.readdirSync(out).sort()).toEqual(["plan.gguf", "train-plan.arrow"]);
        const second = await train("--lr", "0.01", "--schedule", "constant");
        expect(second.code, second.stderr).toBe(0);
        const curve = await readTable(path.join(out, "train-plan.arrow"), "training_curve");
        expect(curve.map((row) => row.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(curve.every((row) => Math.abs(row.lr - 0.01) < 1e-9)).toBe(true);
    });

    it("samples with an empty response are left out and counted (an imported file may hold them)", { timeout: 120_000 }, async () => {
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-blank-"));
        fs.writeFileSync(path.join(runDir, "config.yaml"), `name: blank\nmodel:\n  path: ${tinyModel}\n`);
        const sample = (id: string, output: string) => ({ id, agent: "plan" as const, trajectory_id: "t", step: 0, kind: "thought", input: "Question: x\nThought:", output });
        await writeTable(path.join(runDir, "samples.arrow"), "samples", [sample("a", ""), sample("b", "   ")]);
        const result = await runCliProcess(["train", "--run-dir", runDir]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain("train: left out 2 samples with an empty response (they would teach the agent to stop at once)");
        expect(fs.existsSync(path.join(runDir, "adapters", "plan.gguf"))).toBe(false);
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.stages.train.stats).toMatchObject({ empty_responses: 2, plan_samples: 0 });
    });

    it("zero kept trajectories: the train stage names the filter as the cause, not the context size", { timeout: 120_000 }, async () => {
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-empty-"));
        fs.writeFileSync(path.join(runDir, "config.yaml"), `name: empty\nmodel:\n  path: ${tinyModel}\n`);
        await writeTable(path.join(runDir, "samples.arrow"), "samples", []);
        const now = new Date().toISOString();
        fs.writeFileSync(path.join(runDir, "manifest.json"), JSON.stringify({
            version: 1, pipeline: "empty", createdAt: now, updatedAt: now,
            stages: { filter: { status: "done", inputHash: "x", outputs: { "filtered.arrow": { rows: 0 } }, startedAt: now, stats: { trajectories: 7, kept: 0 } } }
        }));
        const result = await runCliProcess(["train", "--run-dir", runDir]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain("train: nothing to train on (the filter kept 0 of 7 trajectories)");
        expect(result.stderr).not.toMatch(/fit \d+ tokens/);
        expect(result.stderr).toMatch(/^train: done in \d+\.\ds, nothing written$/m);
        // no training speed where nothing trained (the report's tokens/s cell stays empty)
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.stages.train.stats).not.toHaveProperty("tokens_per_s");
    });
});
