import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { importOriginal, parseScratchpad } from "../../src/pipeline/import-original.js";
import { readTable, writeTable } from "../../src/data/table-io.js";
import { readGgufInfo } from "../../src/gguf/reader.js";
import { choicesFromQuestion, scoreTaskAnswer } from "../../src/pipeline/task-setup.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";
import { evalMethods } from "../../src/data/schemas.js";
import { evalMethodSpecs } from "../../src/pipeline/eval-methods.js";

const shared = path.resolve(packageRoot, "../shared");
const fixture = path.join(shared, "fixtures", "autoact-original", "group-planning-13b-medium.jsonl");
const tinyModel = path.join(shared, "models", "stories260K.gguf");
const haveFixture = fs.existsSync(fixture) && fs.existsSync(tinyModel);
if (!haveFixture)
    console.warn(`skipping the import of the original's files: ${fixture} or ${tinyModel} is absent`);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "autoact-import-"));
const hotpotqa = path.join(packageRoot, "pipelines", "hotpotqa.yaml");
const hotpotqaData = path.join(shared, "datasets", "hotpotqa");

describe.skipIf(!haveFixture)("autoact import of the original's files", () => {
    it("reads the scratchpads: the header's tools (BingSearch -> Search), steps and the protocol's end", async () => {
        const rows = fs.readFileSync(fixture, "utf8").trim().split("\n").map((line) => JSON.parse(line));
        const first = await parseScratchpad(rows[0].prompt);
        expect(first.tools).toEqual(["Search", "Retrieve", "Lookup"]);
        expect(first.steps.map((s) => `${s.action}[${s.argument}]`)).toEqual([
            "Search[Arthur's Magazine history]", "Search[First for Women history]", "Finish[Arthur's Magazine]", "Reflect[right]"
        ]);
        expect(first.steps[0]!.thought).toBe("I know that both magazines were founded in the late 19th century, but I'm not sure which one was started first.");
        // HTML entities of the web results are decoded; the protocol's observations are ours.
        expect(first.steps[0]!.observation).toMatch(/^Arthur's Magazine \(1844–1846\) was an American literary periodical/);
        expect(first.steps[2]!.observation).toBe('Answer "Arthur\'s Magazine" recorded. Check it: Reflect[right] if it is right, Reflect[wrong] if not.');
        expect(first.finalAnswer).toBe("Arthur's Magazine");
        // Row 4: a Reflect before any Finish is an invalid action, as in our protocol.
        const fourth = await parseScratchpad(rows[3].prompt);
        expect(fourth.steps.map((s) => s.action)).toEqual(["Search", "Reflect", "Finish", "Reflect"]);
        expect(fourth.steps[1]!.observation).toBe("Invalid action: Reflect must directly follow Finish.");
        expect(fourth.finalAnswer).toBe("cadmium chloride");
        // Every row ends with Finish then Reflect, and its final answer is its last Finish.
        for (const row of rows) {
            const parsed = await parseScratchpad(row.prompt);
            expect(parsed.steps.at(-1)!.action).toBe("Reflect");
            expect(parsed.finalAnswer).toBe(parsed.steps.at(-2)!.argument);
        }
    });

    it("replays the original's steps through this project's episode rules: Finish[] is invalid, and so is a Reflect after it; thoughts are cleaned", async () => {
        const prompt = [
            "Answer questions. Action can be: (1) BingSearch[query], which searches.", "Question: Which magazine was started first?",
            "Thought: Thought: I should search. Action: BingSearch[Arthur's Magazine]", "Action: BingSearch[Arthur's Magazine]", "Observation: Arthur's Magazine (1844-1846).",
            "Thought: I am not sure.", "Action: Finish[]", "Observation: Please reflect your answer.",
            "Thought: It is wrong.", "Action: Reflect[wrong]", "Observation: The answer maybe wrong.",
            "Thought: It was Arthur's Magazine.", "Action: Finish[Arthur's Magazine]", "Observation: Please reflect your answer.",
            "Thought: Right.", "Action: Reflect[right]", "Observation: Answer is CORRECT"
        ].join("\n");
        const parsed = await parseScratchpad(prompt);
        expect(parsed.steps.map((s) => [s.thought, s.action, s.observation.split(":")[0]])).toEqual([
            ["I should search.", "Search", "Arthur's Magazine (1844-1846)."],
            ["I am not sure.", "Finish", "Invalid action"],
            ["It is wrong.", "Reflect", "Invalid action"],
            ["It was Arthur's Magazine.", "Finish", `Answer "Arthur's Magazine" recorded. Check it`],
            ["Right.", "Reflect", "Episode finished."]
        ]);
        expect(parsed.finalAnswer).toBe("Arthur's Magazine");
    });

    it("imports the original's data_plan/action/reflect.json as samples, in its own text", async () => {
        const dir = tmp();
        const header = "I want you to be a good multi-hop question answerer ,solving a question answering task with interleaving Thought, Action, Observation steps.";
        const write = (name: string, value: unknown) => {
            fs.writeFileSync(path.join(dir, name), JSON.stringify(value));
            return path.join(dir, name);
        };
        const result = await importOriginal({
            runDir: path.join(dir, "run"), configFile: hotpotqa,
            instruct: write("self_instruct.json", [{ Question: "The Treaty of Versailles, signed in 1919, officially ended which war?", Answer: "World War I" }]),
            samples: {
                plan: write("data_plan.json", [
                    { input: `${header}\nQuestion:Who wrote Hamlet?\nThought: `, output: "I need to search Hamlet." },
                    { input: `${header}\nQuestion:Who wrote Hamlet?\nThought: I need to search Hamlet.\nAction: `, output: "BingSearch" }
                ]),
                tool: write("data_action.json", [{ input: `${header}\nQuestion:Who wrote Hamlet?\nThought: I need to search Hamlet.\nAciton: BingSearch`, output: "Hamlet author" }]),
                reflect: write("data_reflect.json", [
                    { input: `${header}\nQuestion:Who wrote Hamlet?\nThought: `, output: "Shakespeare wrote it, so it is right." },
                    { input: `${header}\nQuestion:Who wrote Hamlet?\nThought: Shakespeare wrote it, so it is right.\n`, output: "Reflect[right]" }
                ])
            }
        });
        expect(result).toMatchObject({ tasks: 1, trajectories: 0, samples: { plan: 2, tool: 1, reflect: 2 } });
        const samples = await readTable(path.join(dir, "run", "samples.arrow"), "samples");
        expect(samples.map((s) => `${s.agent}:${s.kind}:${s.output}`)).toEqual([
            "plan:thought:I need to search Hamlet.", "plan:action:Search", "tool:argument:Hamlet author",
            "reflect:reflection:Shakespeare wrote it, so it is right.", "reflect:verdict:Reflect[right]"
        ]);
        expect(samples[2]!.input.endsWith("Aciton: Search")).toBe(true);
        const tasks = await readTable(path.join(dir, "run", "tasks.arrow"), "tasks");
        expect(tasks[0]).toMatchObject({ question: "The Treaty of Versailles, signed in 1919, officially ended which war?", answer: "World War I" });
    });

    it("reads the original's ScienceQA self-instruct records: options apart (Options), image as Caption and Ocr", async () => {
        const dir = tmp();
        const file = path.join(dir, "science_metaqa.json");
        // the shapes of zjunlp/AutoAct's Self_Instruct/science_metaqa.json
        fs.writeFileSync(file, JSON.stringify([
            { Question: "Which material would be the best insulator for keeping a spacecraft warm on a cold planet?", Options: "Options: (A) Styrofoam (B) Cotton (C) Aluminum foil (D) Kevlar", Ocr: "Aluminum foil,Styrofoam,Cotton,Kevlar", Caption: "A close-up of a spacecraft's insulation", Answer: "B. Cotton" },
            { Question: "Which type of plant is most likely to have a taproot?", Options: "(A) Grass (B) Flower (C) Tree (D) Vine", Caption: "no img", Answer: "C. Tree" }
        ]));
        await importOriginal({ runDir: path.join(dir, "run"), configFile: path.join(packageRoot, "pipelines", "scienceqa.yaml"), instruct: file });
        const tasks = await readTable(path.join(dir, "run", "tasks.arrow"), "tasks");
        expect(tasks.map((t) => t.question.split("\n").at(-1))).toEqual(["Options: (A) Styrofoam (B) Cotton (C) Aluminum foil (D) Kevlar", "Options: (A) Grass (B) Flower (C) Tree (D) Vine"]);
        expect(JSON.parse(tasks[0]!.meta!)).toEqual({ image: { caption: "A close-up of a spacecraft's insulation", ocr: "Aluminum foil,Styrofoam,Cotton,Kevlar" } });
        expect(tasks[1]!.meta).toBeNull();
        // so that the filter can score answers to them
        const task = { kind: "multiple-choice", metric: "option" } as const;
        expect(scoreTaskAnswer(task as never, "B", tasks[0]!.answer, choicesFromQuestion(tasks[0]!.question)).correct).toBe(true);
        expect(scoreTaskAnswer(task as never, "Tree", tasks[1]!.answer, choicesFromQuestion(tasks[1]!.question)).correct).toBe(true);
    });

    let trainedRun = "";
    it("saves a config that stands on its own: the pipeline file's relative model path made absolute", async () => {
        const dir = tmp();
        fs.mkdirSync(path.join(dir, "pipelines"));
        fs.copyFileSync(tinyModel, path.join(dir, "model.gguf"));
        const config = path.join(dir, "pipelines", "mine.yaml");
        fs.writeFileSync(config, `${fs.readFileSync(hotpotqa, "utf8").replace("path: default", "path: ../model.gguf")}`);
        const runDir = path.join(dir, "elsewhere", "run");
        const imported = await runCliProcess(["import", "--config", config, "--run-dir", runDir, "--trajectories", fixture, "--set", "data.corpus=[]"]);
        expect(imported.code, imported.stderr).toBe(0);
        expect(fs.readFileSync(path.join(runDir, "config.yaml"), "utf8")).toContain(`path: ${path.join(dir, "model.gguf")}\n`);
        // a stage run from the saved config alone finds the model; the original's trajectories
        // are its evaluation runs on HotpotQA's medium set, which this config evaluates on: none is kept
        const filtered = await runCliProcess(["filter", "--run-dir", runDir, "--data", hotpotqaData]);
        expect(filtered.code, filtered.stderr).toBe(0);
        expect(filtered.stderr).toContain("filter: left out 40 of 40 trajectories whose question is one of the evaluation sets' (training on them would contaminate the scores)");
        // nor does the -filtering ablation, which takes trajectories without the filter
        const split = await runCliProcess(["split", "--run-dir", runDir, "--data", hotpotqaData, "--set", "eval.methods=[group, ablate-filtering]"]);
        expect(split.code, split.stderr).toBe(0);
        expect(JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")).stages.split.stats).toMatchObject({ trajectories: 0, unfiltered_samples: 0 });
        // a stage that would write over the imported tables is refused, naming where to start instead
        const synth = await runCliProcess(["synth", "--run-dir", runDir, "--data", hotpotqaData]);
        expect(synth.code).toBe(2);
        expect(synth.stderr.trim()).toMatch(/^autoact: trajectories\.arrow in .* was imported by autoact import; the synth stage would replace it: run the stages after the imported tables \(--from filter\), or give --force to replace it$/);
        // and an import waits for no one: a run directory in use is refused
        fs.writeFileSync(path.join(runDir, ".lock"), `${process.pid}\n`);
        const again = await runCliProcess(["import", "--run-dir", runDir, "--config", config, "--trajectories", fixture, "--set", "data.corpus=[]"]);
        fs.rmSync(path.join(runDir, ".lock"));
        expect(again.code).toBe(2);
        expect(again.stderr).toContain(`is in use by process ${process.pid}`);
    });

    it("import -> filter -> split -> train on stories260K: samples for all three agents, three adapters (and the ablations')", { timeout: 1_800_000 }, async () => {
        const runDir = tmp();
        // Every method, so the train stage also makes the -multi and -filtering adapters; no corpus (the eval below needs none);
        // evaluated on the easy set only: the 40 trajectories are the original's runs on the medium set's questions.
        const imported = await runCliProcess(["import", "--config", hotpotqa, "--run-dir", runDir, "--trajectories", fixture,
            "--set", `eval.methods=[${evalMethods.join(", ")}]`, "--set", "data.corpus=[]", "--set", "data.eval=[{name: easy, format: hotpotqa, file: easy.jsonl}]"]);
        expect(imported.code, imported.stderr).toBe(0);
        expect(imported.stdout).toMatch(/trajectories 40 \(11 marked correct\), tools Search, Retrieve, Lookup/);

        const run = await runCliProcess(["run", path.join(runDir, "config.yaml"), "--run-dir", runDir, "--from", "filter", "--until", "train",
            "--data", hotpotqaData, "--model", tinyModel, "--set", "train.steps=2", "--set", "train.batch=2", "--set", "model.context_size=1024", "--set", "train.context=512"]);
        expect(run.code, run.stderr).toBe(0);
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.imported.tables).toEqual(["tasks.arrow", "trajectories.arrow", "tools.arrow"]);
        // The filter keeps the 11 rows the original marked correct (its `correct` is exact match too).
        expect(manifest.stages.filter.stats).toMatchObject({ trajectories: 40, kept: 11 });
        const filtered = await readTable(path.join(runDir, "filtered.arrow"), "filtered");
        const rows = fs.readFileSync(fixture, "utf8").trim().split("\n").map((line) => JSON.parse(line));
        expect(filtered.map((r) => r.question)).toEqual(rows.filter((r) => r.correct).map((r) => r.question));
        // Split, counted by hand over the 11 kept trajectories (finish_by tool): every valid
        // tool or Finish step gives 2 plan samples and 1 tool sample; every valid Reflect, 2
        // reflect samples; the one Reflect before a Finish (row 25) gives none.
        expect(manifest.stages.split.stats).toMatchObject({ trajectories: 11, finish_by: "tool", plan: 80, tool: 40, reflect: 22 });
        // -filtering: all 40 trajectories divided (the filter keeps at most 200).
        expect(manifest.stages.split.stats.unfiltered_samples).toBeGreaterThan(142);
        // Train: the scratchpads' long web results are cut, never dropped (on the left of the prompt: the task
        // header alone is ~900 of this tiny vocabulary's tokens; train-stage.test.ts keeps the question).
        const train = manifest.stages.train.stats;
        expect(train).toMatchObject({ plan_samples: 80, tool_samples: 40, reflect_samples: 22, plan_too_long: 0, tool_too_long: 0, reflect_too_long: 0 });
        expect(train.plan_truncated).toBeGreaterThan(0);
        for (const agent of ["plan", "tool", "reflect"]) {
            const info = await readGgufInfo(path.join(runDir, "adapters", `${agent}.gguf`));
            expect(info.metadata["autoact.agent"]?.value).toBe(agent);
            expect(fs.existsSync(path.join(runDir, "adapters", "unfiltered", `${agent}.gguf`))).toBe(true);
        }
        expect(train).toMatchObject({ multi_samples: 142, multi_too_long: 0 });
        expect((await readGgufInfo(path.join(runDir, "adapters", "multi.gguf"))).metadata["general.type"]?.value).toBe("adapter");
        trainedRun = runDir;
        // At most filter.max of the right ones, chosen at random (filter.seed), not the first synthesized, in their own order
        const fewer = async (seed: number, seedTasks: string[] = []) => {
            const copy = tmp();
            fs.cpSync(runDir, copy, { recursive: true });
            if (seedTasks.length > 0) {
                const tasks = await readTable(path.join(copy, "tasks.arrow"), "tasks");
                await writeTable(path.join(copy, "tasks.arrow"), "tasks", tasks.map((t) => (seedTasks.includes(t.id) ? { ...t, source: "seed" as const } : t)));
            }
            const refiltered = await runCliProcess(["filter", "--run-dir", copy, "--data", hotpotqaData, "--set", "filter.max=5", "--set", `filter.seed=${seed}`]);
            expect(refiltered.code, refiltered.stderr).toBe(0);
            const questions = (await readTable(path.join(copy, "filtered.arrow"), "filtered")).map((r) => r.question);
            fs.rmSync(copy, { recursive: true, force: true });
            return questions;
        };
        const right = filtered.map((r) => r.question);
        const [chosen, again, otherSeed] = [await fewer(1), await fewer(1), await fewer(2)];
        expect(chosen).toHaveLength(5);
        expect(chosen).toEqual(right.filter((q) => chosen.includes(q)));
        expect(chosen).not.toEqual(right.slice(0, 5));
        expect(again).toEqual(chosen);
        expect(otherSeed).not.toEqual(chosen);
        // the seeds' right trajectories are kept first (the few-shot exemplars are made of them)
        const lastTwo = filtered.slice(-2);
        expect(lastTwo.every((r) => chosen.includes(r.question))).toBe(false); // else this would show nothing
        const withSeeds = await fewer(1, lastTwo.map((r) => r.task_id));
        expect(withSeeds).toHaveLength(5);
        expect(withSeeds.slice(-2)).toEqual(lastTwo.map((r) => r.question));
        const report = fs.readFileSync(path.join(runDir, "report.md"), "utf8");
        expect(report).toMatch(/plan_truncated=\d+/);
        expect(report).toContain(`Imported by \`autoact import\` from zjunlp/AutoAct's files (\`${fixture}\`): tasks.arrow, trajectories.arrow, tools.arrow`);
        console.log(`import -> filter -> split -> train: filter ${JSON.stringify(manifest.stages.filter.stats)}; split ${JSON.stringify(manifest.stages.split.stats)}; train ${JSON.stringify(train)}`);
    });

    it("autoact eval --methods all: every method's rows and the paper's main table (a tiny model scores 0: the mechanics are tested)", { timeout: 1_800_000 }, async () => {
        expect(trainedRun).not.toBe("");
        const result = await runCliProcess(["eval", "--run-dir", trainedRun, "--methods", "all", "--model", tinyModel, "--limit", "1",
            "--data", hotpotqaData,
            "--set", "eval.max_steps=2", "--set", "eval.max_tokens=16", "--set", "model.parallel=2", "--set", "model.context_size=1024"]);
        expect(result.code, result.stderr).toBe(0);
        for (const set of ["easy"]) {
            const rows = await readTable(path.join(trainedRun, `eval-${set}.arrow`), "eval");
            expect(rows.map((r) => r.method)).toEqual([...evalMethods]);
            // -reflection ends at the first Finish; the others never have a step after a second Finish.
            for (const row of rows.filter((r) => r.method !== "cot" && r.method !== "cot-fewshot"))
                expect(row.trajectory!.length).toBeLessThanOrEqual(2);
        }
        const manifest = JSON.parse(fs.readFileSync(path.join(trainedRun, "manifest.json"), "utf8"));
        expect(String(manifest.stages.eval.stats.methods).split(",")).toEqual([...evalMethods]);
        expect(fs.existsSync(path.join(trainedRun, "parts"))).toBe(false);
        const report = fs.readFileSync(path.join(trainedRun, "report.md"), "utf8");
        expect(report).toContain("### Main table");
        expect(report).toContain("| method | easy F1 | easy EM | mean steps | invalid-action rate | n |");
        for (const method of evalMethods)
            expect(report).toContain(`| ${evalMethodSpecs[method].label} |`);
        expect(report).toContain("split.finish_by: tool");
    });
});
