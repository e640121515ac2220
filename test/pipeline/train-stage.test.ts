import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runPipeline } from "../../src/pipeline/runner.js";
import { divideTrajectory } from "../../src/agents/division.js";
import { readTable, writeTable } from "../../src/data/table-io.js";
import { readGgufInfo } from "../../src/gguf/reader.js";
import { checkGgufFileSync, describeAdapter } from "../../src/llm/gguf-check.js";
import { createProgress, type ProgressReporter } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";
import { createToolLibrary } from "../../src/tools/index.js";
import { loadConfig } from "../../src/pipeline/config.js";
import { taskHeader } from "../../src/pipeline/task-setup.js";
import { adapterKey } from "../../src/pipeline/stages/train.js";

const tinyModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
const haveShared = fs.existsSync(tinyModel);
if (!haveShared)
    console.warn(`skipping the pipeline train stage test: ${tinyModel} is absent`);

const quick = [
    "model.context_size=2048", "model.parallel=2", "instruct.max_tokens=32", "synth.max_steps=2", "synth.max_tokens=16",
    "eval.max_steps=2", "eval.max_tokens=16", "eval.methods=[group]",
    "train.steps=3", "train.context=2048", "train.targets=[attn_q, attn_v]"
];

/**
 * The tiny model never answers right, so its runs keep no trajectory: this test puts the
 * samples of a hand-written right trajectory in the run directory, then runs the pipeline's
 * train stage (the native trainer) and evaluates with the adapters it wrote.
 */
describe.skipIf(!haveShared)("the pipeline's train stage", () => {
    it("trains one adapter per sub-agent from samples.arrow and evaluation picks them up", { timeout: 1_800_000 }, async () => {
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-train-stage-"));
        const base = {
            configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), model: tinyModel, runDir, limit: 1,
            dataDirs: [path.resolve(packageRoot, "../shared/datasets/hotpotqa")], set: [...quick, "data.corpus=[]"],
            progress: createProgress({ silent: true }), log: () => {}
        };
        await runPipeline({ ...base, until: "split" });

        const trajectories = await readTable(path.join(runDir, "trajectories.arrow"), "trajectories");
        const question = trajectories[0]!.question;
        const steps = [
            { thought: "Search first.", action: "Search", argument: "Arno Schmidt chef", observation: "Arno Schmidt was chef at the Waldorf." },
            { thought: "The Waldorf is in Manhattan.", action: "Finish", argument: "Manhattan", observation: "Answer recorded." },
            { thought: "It is right.", action: "Reflect", argument: "right", observation: "Episode finished." }
        ];
        const samples = divideTrajectory(await headerOf(runDir), question, steps).map((s, i) => ({ id: `t-${i}`, trajectory_id: "t", ...s }));
        await writeTable(path.join(runDir, "samples.arrow"), "samples", samples);

        // the progress each adapter reports: its steps, and the tokens they trained (the tok/s shown)
        const progress = new Map<string, { total: number; steps: number; tokens: number }>();
        let current = "";
        const recording: ProgressReporter = {
            start: (label, total) => progress.set((current = label), { total, steps: 0, tokens: 0 }),
            advance: (items, tokens = 0) => {
                progress.get(current)!.steps += items;
                progress.get(current)!.tokens += tokens;
            },
            done: () => {}
        };
        const trained = await runPipeline({ ...base, only: ["train"], progress: recording });
        expect([...progress.keys()]).toEqual(["train plan", "train tool", "train reflect"]);
        for (const shown of progress.values()) {
            expect(shown).toMatchObject({ total: 3, steps: 3 });
            expect(shown.tokens).toBeGreaterThan(0);
        }
        const baseName = (await readGgufInfo(tinyModel)).metadata["general.name"]?.value ?? path.basename(tinyModel);
        expect(trained.stages.find((s) => s.stage === "train")!.status).toBe("ran");
        for (const agent of ["plan", "tool", "reflect"]) {
            const adapter = path.join(runDir, "adapters", `${agent}.gguf`);
            const info = await readGgufInfo(adapter);
            expect(info.metadata["general.type"]?.value).toBe("adapter");
            expect(info.metadata["autoact.agent"]?.value).toBe(agent);
            // what it is an adapter of, as GGUF records it (model info shows it)
            expect(info.metadata["general.base_model.count"]?.value).toBe(1);
            expect(describeAdapter(checkGgufFileSync(adapter))).toMatch(new RegExp(`agent: ${agent}[^]*base: ${String(baseName)}`));
            const curve = await readTable(path.join(runDir, "adapters", `train-${agent}.arrow`), "training_curve");
            expect(curve.length).toBeGreaterThan(0);
        }

        // What does not change the weights keeps them: a method that needs no adapters, the checkpoint cadence.
        const adapterBytes = () => ["plan", "tool", "reflect"].map((agent) => fs.readFileSync(path.join(runDir, "adapters", `${agent}.gguf`)).toString("base64"));
        const before = adapterBytes();
        const logged: string[] = [];
        progress.clear();
        await runPipeline({ ...base, only: ["train"], progress: recording, log: (line) => logged.push(line), set: [...base.set, "eval.methods=[group, cot]", "train.checkpoint_every=2"] });
        expect([...progress.keys()]).toEqual([]);
        expect(logged.filter((line) => / adapter up to date$/.test(line))).toHaveLength(3);
        expect(adapterBytes()).toEqual(before);
        // --force trains them again
        await runPipeline({ ...base, only: ["train"], progress: recording, force: true });
        expect([...progress.keys()]).toEqual(["train plan", "train tool", "train reflect"]);
        // A trial on other settings puts the finished adapters aside; back on these, they come back untrained.
        const trained3 = adapterBytes();
        await runPipeline({ ...base, only: ["train"], set: [...base.set, "train.steps=2"] });
        expect(adapterBytes()).not.toEqual(trained3);
        progress.clear();
        logged.length = 0;
        await runPipeline({ ...base, only: ["train"], progress: recording, log: (line) => logged.push(line) });
        expect([...progress.keys()]).toEqual([]);
        expect(logged.filter((line) => /adapter back from previous\/train\//.test(line))).toHaveLength(3);
        expect(adapterBytes()).toEqual(trained3);

        // A retrain on other settings stopped part-way leaves no adapter of the old settings, and eval
        // refuses to evaluate a train stage that did not finish.
        const stopAtTool: ProgressReporter = { start: (label) => { if (label === "train tool") throw new Error("stopped"); }, advance: () => {}, done: () => {} };
        await expect(runPipeline({ ...base, only: ["train"], progress: stopAtTool, set: [...base.set, "train.rank=4"] })).rejects.toThrow(/stopped|autoact-train failed/);
        expect(["plan", "tool", "reflect"].filter((agent) => fs.existsSync(path.join(runDir, "adapters", `${agent}.gguf`)))).toEqual(["plan"]);
        expect((await readGgufInfo(path.join(runDir, "adapters", "plan.gguf"))).metadata["adapter.lora.alpha"]).toBeDefined();
        await expect(runPipeline({ ...base, only: ["eval"], set: [...base.set, "train.rank=4"] })).rejects.toThrow(/^the train stage failed in .*: run it to the end first/);
        // methods that load no adapter do not wait for it
        await runPipeline({ ...base, only: ["eval"], set: [...base.set, "train.rank=4", "eval.methods=[react]"] });
        await runPipeline({ ...base, only: ["train"], set: [...base.set, "train.rank=4"] });

        const evaluated = await runPipeline({ ...base, only: ["eval"], set: [...base.set, "train.rank=4"] });
        const stats = evaluated.stages.find((s) => s.stage === "eval")!.record!.stats!;
        expect(String(stats.adapters)).toMatch(/plan=.*plan\.gguf,tool=.*tool\.gguf,reflect=.*reflect\.gguf/);
        const rows = await readTable(path.join(runDir, "eval-easy.arrow"), "eval");
        expect(rows.every((r) => r.method === "group")).toBe(true);

        // an ablation whose adapter the train stage did not make would run on the base model under its name: refused
        await expect(runPipeline({ ...base, only: ["eval"], set: [...base.set, "train.rank=4", "eval.methods=[group, ablate-multi]"] }))
            .rejects.toThrow(/^eval\.methods has ablate-multi, but .*adapters\/multi\.gguf was not trained .*--from split/);

        // A sample longer than the context loses its oldest steps, not its task and question
        const long = steps.map((step, i) => (i === 0 ? { ...step, observation: "Arno Schmidt cooked at the Waldorf for years. ".repeat(40) } : step));
        const longSamples = divideTrajectory(await headerOf(runDir), question, long).map((s, i) => ({ id: `l-${i}`, trajectory_id: "l", ...s }));
        await writeTable(path.join(runDir, "samples.arrow"), "samples", longSamples);
        const cutLogged: string[] = [];
        const cut = await runPipeline({ ...base, only: ["train"], log: (line) => cutLogged.push(line), set: [...base.set, "train.steps=1", "train.context=1536"] });
        const cutStats = cut.stages.find((s) => s.stage === "train")!.record!.stats!;
        expect(cutStats).toMatchObject({ plan_left_cut: 0, tool_left_cut: 0, reflect_left_cut: 0, plan_too_long: 0 });
        expect(cutStats.plan_truncated).toBeGreaterThan(0);
        expect(cutLogged).toContainEqual(expect.stringMatching(/^train: plan: \d+ samples cut to 1536 tokens \(responses whole; their oldest steps after the question\)/));
    });
});

/** The task header the run's stages render (config + selected tools). */
async function headerOf(runDir: string): Promise<string> {
    const tools = await readTable(path.join(runDir, "tools.arrow"), "tools");
    const library = createToolLibrary();
    const selected = library.select(tools.filter((t) => t.selected).sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0)).map((t) => t.name));
    library.close();
    return taskHeader(loadConfig(path.join(runDir, "config.yaml")).config, selected);
}

describe("an adapter's key", () => {
    it("is what the trainer reads of the samples, not how they were fitted", () => {
        const sample = { tokens: [1, 5, 6, 7], mask: [0, 0, 1, 1] };
        const key = adapterKey("plan", "model-sha", { rank: 8 }, [sample]);
        expect(adapterKey("plan", "model-sha", { rank: 8 }, [{ ...sample, keep: 2 }])).toBe(key);
        expect(adapterKey("plan", "model-sha", { rank: 8 }, [{ ...sample, tokens: [1, 5, 6, 8] }])).not.toBe(key);
        expect(adapterKey("plan", "model-sha", { rank: 4 }, [sample])).not.toBe(key);
    });
});
