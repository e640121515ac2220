import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { runPipeline } from "../../src/pipeline/runner.js";
import { readTable, readTableInfo } from "../../src/data/table-io.js";
import { createProgress } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";
import { runCliProcess } from "../helpers/cli.js";

const shared = path.resolve(packageRoot, "../shared");
const tinyModel = path.join(shared, "models", "stories260K.gguf");
const haveShared = fs.existsSync(tinyModel) && fs.existsSync(path.join(shared, "datasets", "hotpotqa", "easy.jsonl"));
if (!haveShared)
    console.warn(`skipping pipeline runs: ${tinyModel} or the shared datasets are absent`);

// Small budgets: the tiny model answers nothing right; these tests check the machinery.
const quick = [
    "model.context_size=1024", "model.parallel=4",
    "instruct.max_tokens=48", "synth.max_steps=3", "synth.max_tokens=24", "synth.batch_size=2",
    "eval.max_steps=2", "eval.max_tokens=16"
];
const silent = { progress: createProgress({ silent: true }), log: () => {} };
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "autoact-run-"));

/**
 * A data folder for hotpotqa.yaml: the first `evalCount` questions of each shared level as
 * the eval files, the seeds, and `corpus.jsonl`: pages from the other questions' paragraphs,
 * none of them an eval question's (a corpus apart from the eval set).
 */
function hotpotqaDataDir(evalCount: number): string {
    const dir = tmp();
    const evalTitles = new Set<string>();
    const pages = new Map<string, string>();
    for (const level of ["easy", "medium"]) {
        const lines = fs.readFileSync(path.join(shared, "datasets", "hotpotqa", `${level}.jsonl`), "utf8").trim().split("\n");
        fs.writeFileSync(path.join(dir, `${level}.jsonl`), lines.slice(0, evalCount).join("\n") + "\n");
        lines.forEach((line, i) => {
            for (const [title, sentences] of JSON.parse(line).context as [string, string[]][]) {
                if (i < evalCount)
                    evalTitles.add(title);
                else
                    pages.set(title, sentences.join("").trim());
            }
        });
    }
    const corpus = [...pages].filter(([title]) => !evalTitles.has(title)).map(([title, text]) => JSON.stringify({ title, text }));
    fs.writeFileSync(path.join(dir, "corpus.jsonl"), corpus.join("\n") + "\n");
    fs.copyFileSync(path.join(shared, "datasets", "hotpotqa", "seeds.json"), path.join(dir, "seeds.json"));
    return dir;
}

/** A data folder for scienceqa.yaml: the shared files and a small problems.json (train-lectures). */
function scienceqaDataDir(): string {
    const dir = tmp();
    for (const name of ["grade1-4.json", "grade5-8.json", "seeds.json"])
        fs.copyFileSync(path.join(shared, "datasets", "scienceqa", name), path.join(dir, name));
    const problems = {
        p1: { question: "Which of these states is farthest north?", split: "train", skill: "Read a map: cardinal directions", lecture: "A map has four cardinal directions: north, south, east and west. North is toward the top of most maps.", solution: "To find the answer, look at the compass rose." },
        p2: { question: "Which is a mammal?", split: "train", skill: "Identify mammals", lecture: "Mammals have hair or fur and feed their young milk.", solution: "A dolphin is a mammal." },
        p3: { question: "Held out", split: "test", skill: "Held out", lecture: "Not in the corpus.", solution: "No." }
    };
    fs.writeFileSync(path.join(dir, "problems.json"), JSON.stringify(problems));
    return dir;
}

const manifestOf = (runDir: string) => JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));

describe.skipIf(!haveShared)("pipeline runs on the tiny real model", () => {
    it("hotpotqa: every stage but train writes its table, a manifest and a report; a rerun skips them all", { timeout: 900_000 }, async () => {
        const runDir = tmp();
        const options = {
            configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), dataDirs: [hotpotqaDataDir(4)],
            model: tinyModel, runDir, limit: 2, skip: ["train" as const], set: [...quick, "data.corpus=[corpus.jsonl]"], ...silent
        };
        const first = await runPipeline(options);
        expect(first.stages.filter((s) => s.status === "ran").map((s) => s.stage))
            .toEqual(["instruct", "select-tools", "synth", "filter", "split", "eval"]);
        const tables: Record<string, string> = {
            "tasks.arrow": "tasks", "tools.arrow": "tools", "trajectories.arrow": "trajectories",
            "filtered.arrow": "filtered", "samples.arrow": "samples", "eval-easy.arrow": "eval", "eval-medium.arrow": "eval"
        };
        for (const [file, schema] of Object.entries(tables)) {
            const info = await readTableInfo(path.join(runDir, file));
            expect(info.schemaName, file).toBe(schema);
        }
        const tasks = await readTable(path.join(runDir, "tasks.arrow"), "tasks");
        expect(tasks.filter((t) => t.source === "seed")).toHaveLength(2);
        const trajectories = await readTable(path.join(runDir, "trajectories.arrow"), "trajectories");
        expect(trajectories.length).toBe(Math.min(2, tasks.length));
        for (const t of trajectories) {
            expect(t.steps.length).toBeGreaterThan(0);
            expect(t.steps.length).toBeLessThanOrEqual(3);
        }
        const tools = await readTable(path.join(runDir, "tools.arrow"), "tools");
        expect(tools.filter((t) => t.selected)).toHaveLength(3);
        const evalRows = await readTable(path.join(runDir, "eval-easy.arrow"), "eval");
        expect(evalRows.map((r) => r.method).sort()).toEqual(["cot", "cot", "group", "group", "react", "react"]);

        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.model.sha256).toMatch(/^[0-9a-f]{64}$/);
        // The corpus is recorded with its hash and its (absent) overlap with the 8 eval questions.
        expect(manifest.corpus.sources[0]).toMatchObject({ name: "corpus.jsonl", format: "jsonl" });
        expect(manifest.corpus.sources[0].sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(manifest.corpus.pages).toBeGreaterThan(1000);
        expect(manifest.corpus.overlap).toMatchObject({ measured: 8, questions: 0, paragraphs: 0 });
        for (const stage of ["instruct", "select-tools", "synth", "filter", "split", "eval"])
            expect(manifest.stages[stage].status, stage).toBe("done");
        expect(manifest.stages.train).toBeUndefined();
        // kept <= finished (those with an answer to judge) <= synthesized, all counted
        const { trajectories: synthesized, finished, kept } = manifest.stages.filter.stats;
        expect(kept <= finished && finished <= synthesized && synthesized === trajectories.length, JSON.stringify(manifest.stages.filter.stats)).toBe(true);
        const report = fs.readFileSync(path.join(runDir, "report.md"), "utf8");
        expect(report).toContain("## Evaluation");
        expect(report).toMatch(/Overlap with the evaluation sets: 0 of 8 eval questions/);
        expect(report).toContain("| group | overall |");
        expect(fs.existsSync(path.join(runDir, "parts"))).toBe(false);

        const second = await runPipeline(options);
        expect(second.stages.filter((s) => s.status !== "skipped").every((s) => s.status === "up-to-date")).toBe(true);

        // A changed setting reruns that stage and every stage after it whose input changed.
        const third = await runPipeline({ ...options, set: [...options.set, "filter.max=1"] });
        expect(third.stages.find((s) => s.stage === "filter")!.status).toBe("ran");
        expect(third.stages.find((s) => s.stage === "synth")!.status).toBe("up-to-date");

        // The outputs of the earlier inputs were put aside, not lost: back to them, they come back.
        const logged: string[] = [];
        const fourth = await runPipeline({ ...options, log: (line) => logged.push(line) });
        expect(fourth.stages.filter((s) => s.status === "ran").map((s) => s.stage)).toEqual([]);
        expect(logged).toContain("filter: up to date (its outputs for these inputs, put aside by an earlier run, are back)");
        expect(manifestOf(runDir).stages.filter.outputs["filtered.arrow"].sha256).toBe(manifest.stages.filter.outputs["filtered.arrow"].sha256);
        expect(fs.existsSync(path.join(runDir, "previous", "filter", "filtered.arrow"))).toBe(true);
        // A stage that fails on a bad input (a corrupt seeds file) costs nothing of what it had made.
        fs.writeFileSync(path.join(options.dataDirs[0]!, "bad-seeds.json"), "[{ not json");
        await expect(runPipeline({ ...options, set: [...options.set, "data.seeds=bad-seeds.json"] })).rejects.toThrow(/bad-seeds\.json/);
        expect(fs.existsSync(path.join(runDir, "tasks.arrow"))).toBe(false);
        const fifth = await runPipeline(options);
        expect(fifth.stages.filter((s) => s.status === "ran").map((s) => s.stage)).toEqual([]);
        expect(manifestOf(runDir).stages.instruct.outputs).toEqual(manifest.stages.instruct.outputs);

        // A stage command continues the run from its directory alone: the data where the run found
        // it (--data is saved into data.search), and its --limit.
        const continued = await runPipeline({ configFile: path.join(runDir, "config.yaml"), runDir, only: ["synth", "eval"], continueRun: true, ...silent });
        expect(continued.stages.filter((s) => s.status !== "skipped").map((s) => s.status)).toEqual(["up-to-date", "up-to-date"]);
        // a stage command's own --limit is for that command: the run's stays
        await runPipeline({ configFile: path.join(runDir, "config.yaml"), runDir, only: ["filter"], continueRun: true, limit: 1, ...silent });
        expect(manifestOf(runDir).limit).toBe(2);

        // Pages put into the run's corpus by hand were never measured against the eval sets: the
        // corpus is made again from data.corpus.
        const pages = manifestOf(runDir).corpus.pages;
        const added = await runCliProcess(["corpus", "import", path.join(options.dataDirs[0]!, "easy.jsonl"), "--db", path.join(runDir, "corpus.sqlite")]);
        expect(added.code, added.stderr).toBe(0);
        await runPipeline({ ...options, only: ["eval"] });
        expect(manifestOf(runDir).corpus.pages).toBe(pages);
    });

    it("scienceqa: multiple-choice tasks with images run through every stage but train", { timeout: 900_000 }, async () => {
        const runDir = tmp();
        const result = await runPipeline({
            configFile: path.join(packageRoot, "pipelines", "scienceqa.yaml"), dataDirs: [scienceqaDataDir()],
            model: tinyModel, runDir, limit: 2, skip: ["train"], set: quick, ...silent
        });
        expect(result.stages.filter((s) => s.status === "ran")).toHaveLength(6);
        // Its corpus: the train split's lectures and solutions, through the descriptor's train-lectures.
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.corpus).toMatchObject({ pages: 4, sources: [{ name: "train-lectures", format: "scienceqa-problems" }] });
        // The seed with an image keeps its caption and OCR, where Image2Text reads them.
        const tasks = await readTable(path.join(runDir, "tasks.arrow"), "tasks");
        const seedImage = JSON.parse(tasks.find((t) => t.id === "seed-1")!.meta!).image;
        expect(seedImage).toEqual({ caption: "An aerial view of a painting of a forest.", ocr: "Oklahoma West Virginia Arizona Louisiana" });
        const evalRows = await readTable(path.join(runDir, "eval-grade1-4.arrow"), "eval");
        expect(evalRows).toHaveLength(6);
        expect(evalRows.every((r) => r.level != null)).toBe(true);
    });
});

describe.skipIf(!haveShared)("resume after SIGKILL", () => {
    let dataDir: string;
    beforeAll(() => {
        dataDir = tmp();
        const seeds = Array.from({ length: 6 }, (_, i) => ({ Question: `Which number comes after ${i * 7}?`, Answer: String(i * 7 + 1) }));
        fs.writeFileSync(path.join(dataDir, "seeds.json"), JSON.stringify(seeds));
    });

    it("a synthesis killed part-way continues from its last batch: same rows as an uninterrupted run, none duplicated", { timeout: 900_000 }, async () => {
        const set = [...quick, "synth.batch_size=1", "synth.max_steps=2", "instruct.target=0", "data.corpus=[]", "data.eval=[]"];
        const base = { configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), model: tinyModel, set, dataDirs: [dataDir], ...silent };

        const straight = tmp();
        await runPipeline({ ...base, runDir: straight, until: "synth" });
        const expected = await readTable(path.join(straight, "trajectories.arrow"), "trajectories");
        expect(expected).toHaveLength(6);

        const killed = tmp();
        await runPipeline({ ...base, runDir: killed, until: "select-tools" });
        const child = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli/main.js"), "synth", "--run-dir", killed, "--data", dataDir], {
            stdio: "ignore", env: { ...process.env, CI: "1" }
        });
        const partsRoot = path.join(killed, "parts", "synth");
        const countParts = () => (fs.existsSync(partsRoot)
            ? fs.readdirSync(partsRoot).flatMap((d) => fs.readdirSync(path.join(partsRoot, d))).filter((f) => f.endsWith(".arrow")).length
            : 0);
        const deadline = Date.now() + 300_000;
        while (countParts() < 2 && Date.now() < deadline)
            await new Promise((resolve) => setTimeout(resolve, 100));
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("exit", resolve));
        const partsAtKill = countParts();
        expect(partsAtKill).toBeGreaterThanOrEqual(2);
        expect(fs.existsSync(path.join(killed, "trajectories.arrow"))).toBe(false);

        const resumed = await runPipeline({ ...base, runDir: killed, only: ["synth"] });
        const record = resumed.stages.find((s) => s.stage === "synth")!.record!;
        expect(Number(record.stats!.resumed)).toBeGreaterThanOrEqual(partsAtKill);
        const rows = await readTable(path.join(killed, "trajectories.arrow"), "trajectories");
        expect(rows).toHaveLength(expected.length);
        expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
        expect(rows.map((r) => r.task_id)).toEqual(expected.map((r) => r.task_id));
    });
});

describe.skipIf(!haveShared)("evaluation keeps finished batches until the stage succeeds", () => {
    it("an error in a later set keeps the earlier set's batches; a rerun on the same inputs takes them up", { timeout: 900_000 }, async () => {
        const data = hotpotqaDataDir(2);
        // medium.jsonl made unreadable once the stages that hold its questions out of training
        // have run (its bytes are hashed before eval runs; its rows are read when its turn
        // comes): the easy set is evaluated, then the stage fails.
        const medium = path.join(data, "medium.jsonl");
        const saved = fs.readFileSync(medium);
        const runDir = tmp();
        const options = {
            configFile: path.join(packageRoot, "pipelines", "hotpotqa.yaml"), dataDirs: [data], model: tinyModel, runDir, limit: 2,
            set: [...quick, "data.corpus=[]", "data.descriptor=", "instruct.target=0", "eval.methods=[react, cot]"], ...silent
        };
        await runPipeline({ ...options, until: "select-tools" });
        fs.writeFileSync(medium, "{ not json\n");
        await expect(runPipeline({ ...options, only: ["eval"] })).rejects.toThrow(/medium\.jsonl/);
        // the easy table the failed run wrote is no result of the run: the report leaves it out
        expect(fs.existsSync(path.join(runDir, "eval-easy.arrow"))).toBe(true);
        await runPipeline({ ...options, only: ["select-tools"] });
        expect(fs.readFileSync(path.join(runDir, "report.md"), "utf8")).not.toContain("## Evaluation");
        const parts = path.join(runDir, "parts", "eval");
        const keptParts = () => fs.readdirSync(parts).flatMap((d) => fs.readdirSync(path.join(parts, d)).map((f) => path.join(parts, d, f)));
        expect(keptParts().map((f) => path.basename(f)).sort()).toEqual(["key-cot.easy.0.arrow", "key-react.easy.0.arrow"]);
        // A rerun with the same inputs takes the easy batches up (not rewritten) and fails on medium again.
        const written = keptParts().map((f) => fs.statSync(f).mtimeMs);
        await expect(runPipeline({ ...options, only: ["eval"] })).rejects.toThrow(/medium\.jsonl/);
        expect(keptParts().map((f) => fs.statSync(f).mtimeMs)).toEqual(written);
        // The repaired file is a changed input (hashed by content): the stage runs again, whole.
        fs.writeFileSync(medium, saved);
        const rerun = await runPipeline({ ...options, only: ["eval"] });
        expect(rerun.stages.find((s) => s.stage === "eval")!.record!.stats).toMatchObject({ resumed_batches: 0 });
        expect((await readTable(path.join(runDir, "eval-medium.arrow"), "eval")).map((r) => r.method)).toEqual(["react", "react", "cot", "cot"]);
        expect(fs.existsSync(path.join(runDir, "parts"))).toBe(false);
    });
});

describe("bad input through the CLI: one line, exit code 2, no table left behind", () => {
    const dir = tmp();
    const write = (name: string, text: string) => {
        const file = path.join(dir, name);
        fs.writeFileSync(file, text);
        return file;
    };
    const expectOneLineError = (result: { code: number | null; stderr: string }, pattern: RegExp) => {
        expect(result.code).toBe(2);
        // Status lines of stages that ran may come first; the error itself is one line, last.
        const errors = result.stderr.trim().split("\n").filter((l) => l.startsWith("autoact:"));
        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatch(pattern);
        expect(result.stderr).not.toMatch(/\n\s+at /);
    };

    it("malformed YAML", async () => {
        const file = write("bad.yaml", "name: x\nsynth: [\n");
        expectOneLineError(await runCliProcess(["run", file, "--run-dir", path.join(dir, "r1")]), /bad\.yaml:\d+: malformed YAML/);
    });

    it("unknown key", async () => {
        const file = write("unknown.yaml", "name: x\nsynth:\n  speed: 3\n");
        expectOneLineError(await runCliProcess(["run", file, "--run-dir", path.join(dir, "r2")]), /unknown\.yaml:3: unknown key "synth\.speed"/);
    });

    it.skipIf(!haveShared)("missing seeds file", async () => {
        const runDir = path.join(dir, "r3");
        const result = await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", tinyModel,
            "--run-dir", runDir, "--set", "data.seeds=nowhere.json", "--set", "data.descriptor=", "--until", "instruct"]);
        expectOneLineError(result, /seeds file "nowhere\.json" not found/);
        expect(fs.existsSync(path.join(runDir, "tasks.arrow"))).toBe(false);
    });

    it.skipIf(!haveShared)("an empty seeds file", async () => {
        const empty = write("empty.json", "[]");
        const runDir = path.join(dir, "r4");
        expectOneLineError(await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", tinyModel,
            "--run-dir", runDir, "--until", "instruct", "--data", path.join(shared, "datasets", "hotpotqa"), "--set", `data.seeds=${empty}`]), /empty\.json: expected a non-empty JSON list/);
        // a run refused before any stage leaves no run directory behind
        expect(fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((f) => f.endsWith(".arrow")) : []).toEqual([]);
    });

    it("a corrupt model", async () => {
        const model = write("corrupt.gguf", "GGUF but not really a model file at all");
        const runDir = path.join(dir, "r5");
        expectOneLineError(await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--model", model,
            "--run-dir", runDir, "--until", "instruct"]), /corrupt\.gguf/);
        expect(fs.existsSync(path.join(runDir, "tasks.arrow"))).toBe(false);
    });

    it.skipIf(!haveShared)("a corpus holding the eval questions' paragraphs is refused naming the overlap, unless allowed", { timeout: 300_000 }, async () => {
        const data = hotpotqaDataDir(4);
        const runDir = path.join(dir, "r6");
        const args = ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--data", data, "--limit", "4", "--model", tinyModel, "--run-dir", runDir];
        const refused = await runCliProcess([...args, "--set", "data.corpus=[easy.jsonl]"]);
        expectOneLineError(refused, /corpus easy\.jsonl holds the paragraphs of 4 of 8 eval questions \(40 eval paragraphs; 4 have a supporting paragraph in it; e\.g\. easy: ".*" \(10 of 10 paragraphs\)\)/);
        // a run refused before any stage leaves no run directory behind
        expect(fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((f) => f.endsWith(".arrow")) : []).toEqual([]);
        // Allowed for a closed-book study: the run goes on and its report states the overlap.
        const allowed = await runCliProcess([...args, "--set", "data.corpus=[easy.jsonl]", "--set", "data.allow_eval_overlap=true", "--until", "synth", ...quick.flatMap((q) => ["--set", q]), "--set", "synth.max_steps=1"]);
        expect(allowed.code, allowed.stderr).toBe(0);
        expect(fs.readFileSync(path.join(runDir, "report.md"), "utf8")).toMatch(/Overlap with the evaluation sets: 4 of 8 eval questions .* allowed by data\.allow_eval_overlap/);
    });

    it.skipIf(!haveShared)("a corpus holding the eval paragraphs under other titles is refused too", { timeout: 120_000 }, async () => {
        const data = hotpotqaDataDir(4);
        const renamed = fs.readFileSync(path.join(data, "easy.jsonl"), "utf8").trim().split("\n")
            .flatMap((line) => (JSON.parse(line).context as [string, string[]][]).map(([title, sentences]) => JSON.stringify({ title: `${title} (wiki)`, text: sentences.join("") })));
        fs.writeFileSync(path.join(data, "renamed.jsonl"), [...new Set(renamed)].join("\n") + "\n");
        const refused = await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--data", data, "--limit", "4", "--model", tinyModel,
            "--run-dir", path.join(dir, "r6c"), "--set", "data.corpus=[renamed.jsonl]"]);
        expectOneLineError(refused, /corpus renamed\.jsonl holds the paragraphs of 4 of 8 eval questions/);
    });

    it.skipIf(!haveShared)("the overlap is measured again when an eval file changes, even to one of the same size", { timeout: 300_000 }, async () => {
        const data = hotpotqaDataDir(4);
        fs.copyFileSync(path.join(data, "easy.jsonl"), path.join(data, "copy.jsonl"));
        const runDir = path.join(dir, "r6b");
        const args = ["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--data", data, "--limit", "4", "--model", tinyModel, "--run-dir", runDir,
            "--set", "data.corpus=[copy.jsonl]", "--set", "data.allow_eval_overlap=true", "--set", "instruct.mode=grounded", "--until", "instruct",
            ...quick.flatMap((q) => ["--set", q]), "--set", "instruct.max_rounds=1"];
        const example = () => /e\.g\. easy: "(.{20})/.exec(fs.readFileSync(path.join(runDir, "report.md"), "utf8"))?.[1];
        const lines = fs.readFileSync(path.join(data, "easy.jsonl"), "utf8").trim().split("\n");
        const question = (line: string) => (JSON.parse(line) as { question: string }).question.slice(0, 20);
        const first = await runCliProcess(args);
        expect(first.code, first.stderr).toBe(0);
        expect(example()).toBe(question(lines[0]));
        // the same questions in another order: the same size, another first overlapping question
        fs.writeFileSync(path.join(data, "easy.jsonl"), [...lines].reverse().join("\n") + "\n");
        const second = await runCliProcess(args);
        expect(second.code, second.stderr).toBe(0);
        expect(example()).toBe(question(lines[3]));
    });

    it.skipIf(!haveShared)("a corpus holding only the eval questions' supporting paragraphs (as whole articles, in another Unicode form) is measured and reported, not refused", { timeout: 300_000 }, async () => {
        const data = hotpotqaDataDir(4);
        // each eval question's supporting paragraphs, as whole articles: their first paragraph, then more, in another Unicode form
        const supports = ["easy", "medium"].flatMap((level) => fs.readFileSync(path.join(data, `${level}.jsonl`), "utf8").trim().split("\n").map((line) => JSON.parse(line)))
            .flatMap((item: { context: [string, string[]][]; supporting_facts: [string, number][] }) => item.context
                .filter(([title]) => item.supporting_facts.some(([t]) => t === title))
                .map(([title, sentences]) => JSON.stringify({ title, text: `${sentences.join("").normalize("NFD")}\n\nSee also: related articles.` })));
        fs.writeFileSync(path.join(data, "supports.jsonl"), [...new Set(supports)].join("\n") + "\n");
        const runDir = path.join(dir, "r7");
        const run = await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--data", data, "--limit", "4", "--model", tinyModel, "--run-dir", runDir,
            "--set", "data.corpus=[supports.jsonl]", "--set", "instruct.mode=grounded", "--until", "instruct", ...quick.flatMap((q) => ["--set", q])]);
        expect(run.code, run.stderr).toBe(0);
        const manifest = JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"));
        expect(manifest.corpus.overlap).toMatchObject({ measured: 8, questions: 0, supporting: 8 });
        expect(fs.readFileSync(path.join(runDir, "report.md"), "utf8")).toMatch(/0 of 8 eval questions \(\d+ eval paragraphs; 8 have a supporting paragraph in it\) — below the refusal threshold/);
    });

    it("a --data folder that is not there", async () => {
        expectOneLineError(await runCliProcess(["run", path.join(packageRoot, "pipelines", "hotpotqa.yaml"), "--data", path.join(dir, "nodir"), "--run-dir", path.join(dir, "r8")]),
            /^autoact: --data .*nodir: no such folder$/);
    });

    it("an eval set whose name is a path", async () => {
        const config = write("p.yaml", "name: p\ndata:\n  eval:\n    - { name: ../../escaped, format: hotpotqa, file: easy.jsonl }\n");
        expectOneLineError(await runCliProcess(["run", config, "--run-dir", path.join(dir, "r9")]), /a "data\.eval" name must be a file name .*"\.\.\/\.\.\/escaped"/);
    });

    it("an unknown flag", async () => {
        expectOneLineError(await runCliProcess(["run", "x.yaml", "--frobnicate"]), /Unknown argument: frobnicate/);
    });
});
