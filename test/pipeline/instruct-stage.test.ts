import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { instructStage } from "../../src/pipeline/stages/instruct.js";
import { loadConfig } from "../../src/pipeline/config.js";
import { DataLocator } from "../../src/pipeline/data-locator.js";
import { RunDir } from "../../src/pipeline/run-dir.js";
import type { StageContext } from "../../src/pipeline/context.js";
import type { ModelSession } from "../../src/pipeline/model-session.js";
import { readTable } from "../../src/data/table-io.js";
import { createProgress } from "../../src/util/progress.js";
import { packageRoot } from "../../src/util/package.js";
import { RecordedModel } from "../helpers/recorded-model.js";

/**
 * The instruct stage driven by replies in the shapes instruct models write (written into the
 * test): which pairs it accepts, which it rejects, and what it stores.
 */
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "autoact-instruct-"));

function contextFor(model: RecordedModel, dataDir: string, set: string[]): StageContext {
    const configFile = path.join(packageRoot, "pipelines", "hotpotqa.yaml");
    const { config } = loadConfig(configFile, { set: ["model.parallel=1", "data.eval=[]", ...set] });
    const runDir = new RunDir(tmp());
    runDir.ensure();
    return {
        config, runDir, limit: null,
        data: new DataLocator({ dataDirs: [dataDir], descriptor: "hotpotqa", cacheDir: tmp() }),
        model: { agent: async () => model.agent() } as unknown as ModelSession,
        progress: createProgress({ silent: true }),
        log: () => {}
    };
}

function seedsDir(): string {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, "seeds.json"), JSON.stringify([
        { Question: "from 1969 to 1979, Arno Schmidt was the executive chef of a hotel located in which neighborhood in New York ?", Answer: "Manhattan" },
        { Question: "Are both Shangri-La City and Ma'anshan cities in China?", Answer: "yes" }
    ]));
    return dir;
}

/** One round of a multiple-choice task from one recorded reply: the stage's result and the generated tasks. */
async function runMultipleChoice(reply: string, dataDir: string) {
    const context = contextFor(new RecordedModel("meta", [reply]), dataDir, ["task.kind=multiple-choice", "task.metric=option", "instruct.target=4", "instruct.per_round=4", "instruct.max_rounds=1"]);
    const result = await instructStage.run(context, "recorded-choices");
    const tasks = await readTable(context.runDir.file("tasks.arrow"), "tasks");
    return { result, generated: tasks.filter((t) => t.source === "generated") };
}

describe("the instruct stage on instruct-model replies", () => {
    it("seeds mode: accepts new pairs in the shapes models write; rejects repeats, a second yes and long answers", async () => {
        const replies = [
            // Round 1: Llama-3-Instruct style, bold labels.
            [
                "Here are 4 new examples:",
                "",
                "**Question:** Which university did the author of \"The Old Man and the Sea\" attend?",
                "**Answer:** None",
                "",
                "**Question:** Are both the Danube and the Rhine longer than 1,000 kilometers?",
                "**Answer:** yes",
                "",
                "**Question:** The director of \"Jaws\" was born in which city?",
                "**Answer:** Cincinnati",
                "",
                "**Question:** In which neighborhood of New York is the Waldorf Astoria hotel?",
                "**Answer:** Manhattan"
            ].join("\n"),
            // Round 2: Qwen style, a numbered list with the answer on the question's line.
            [
                "1. Who was the first wife of the king who built the Taj Mahal's father? Answer: Jagat Gosaini, a Rajput princess of Marwar",
                "2. The director of \"Jaws\" was born in which city? Answer: Cincinnati, Ohio",
                "3. What is the capital of the country where the Angel Falls are? Answer: Caracas",
                "4. Which band recorded the album \"Abbey Road\"? Answer: The Beatles"
            ].join("\n")
        ];
        const model = new RecordedModel("meta", replies);
        const context = contextFor(model, seedsDir(), ["instruct.target=4", "instruct.per_round=4"]);
        const result = await instructStage.run(context, "recorded-seeds");
        const tasks = await readTable(context.runDir.file("tasks.arrow"), "tasks");
        expect(tasks.map((t) => [t.source, t.answer])).toEqual([
            ["seed", "Manhattan"], ["seed", "yes"],
            ["generated", "None"], ["generated", "Cincinnati"],
            ["generated", "Caracas"], ["generated", "The Beatles"]
        ]);
        expect(tasks.find((t) => t.answer === "Caracas")).toMatchObject({ question: "What is the capital of the country where the Angel Falls are?", round: 2 });
        expect(result.stats).toMatchObject({ seeds: 2, generated: 4, target: 4 });
        expect(model.remaining).toBe(0);
        // The prompt shows the seeds in the shape the parser reads back.
        expect(model.prompts[0]).toContain("Question: Are both Shangri-La City and Ma'anshan cities in China?\nAnswer: yes");
        // With yes/no repeats allowed, the second yes is kept.
        const lenient = new RecordedModel("meta", replies.slice(0, 1));
        const lenientContext = contextFor(lenient, seedsDir(), ["instruct.target=3", "instruct.per_round=4", "instruct.repeat_yes_no=true"]);
        await instructStage.run(lenientContext, "recorded-lenient");
        expect((await readTable(lenientContext.runDir.file("tasks.arrow"), "tasks")).map((t) => t.answer)).toEqual(["Manhattan", "yes", "None", "yes", "Cincinnati"]);
    });

    it("holds out the evaluation sets' questions: a model that has read the benchmark cannot put one into training", async () => {
        const dataDir = seedsDir();
        const evalRow = (id: string, question: string, answer: string) =>
            JSON.stringify({ id, question, answer, type: "bridge", level: "easy", supporting_facts: [], context: [] });
        fs.writeFileSync(path.join(dataDir, "easy.jsonl"), [
            evalRow("e1", "Which band recorded the album \"Abbey Road\"?", "The Beatles"),
            evalRow("e2", "Are both Shangri-La City and Ma'anshan cities in China?", "yes")
        ].join("\n") + "\n");
        const reply = [
            "Question: Which band recorded the album 'Abbey Road'?", // the eval question, quoted otherwise
            "Answer: The Beatles",
            "Question: What is the capital of the country where the Angel Falls are?",
            "Answer: Caracas"
        ].join("\n");
        const logged: string[] = [];
        const context = { ...contextFor(new RecordedModel("meta", [reply]), dataDir, ["instruct.target=2", "instruct.per_round=2", "instruct.max_rounds=1", "data.eval=[{name: easy, format: hotpotqa, file: easy.jsonl}]"]), log: (line: string) => logged.push(line) };
        const result = await instructStage.run(context, "recorded-held-out");
        const tasks = await readTable(context.runDir.file("tasks.arrow"), "tasks");
        expect(tasks.filter((t) => t.source === "generated").map((t) => t.answer)).toEqual(["Caracas"]);
        expect(result.stats).toMatchObject({ eval_repeats: 1, seeds_in_eval: 1 });
        expect(logged).toContain("instruct: warning: 1 of the 2 seeds (seeds.json) are questions of the evaluation sets: the scores on them are not clean");
        // and the sets are an input of the stage: editing them makes it stale
        expect(Object.keys(await instructStage.reads.data!(context))).toContain("eval.easy.jsonl");
    });

    it("multiple choice: a task whose options cannot be read, or whose answer names none, is refused (it could never be answered right)", async () => {
        const reply = [
            "Question: Which of these is a mammal? A frog or a dog?", "Answer: dog",
            "Question: Which of these is a fish?\nA) salmon\nB) dolphin", "Answer: A",
            "Question: Which of these conducts electricity? Options: (A) wood (B) copper", "Answer: (C) iron",
            "Question: Which of these is a bird? Options: (A) bat (B) owl", "Answer: owl"
        ].join("\n");
        const { result, generated } = await runMultipleChoice(reply, seedsDir());
        expect(generated.map((t) => t.answer)).toEqual(["A", "owl"]);
        expect(result.stats).toMatchObject({ unscorable: 2 });
    });

    it("multiple choice: a task is new only if its right option's text is (AutoAct's ScienceQA), whatever the letter", async () => {
        const reply = [
            // the seed's answer is "salmon" (A): the same text under another letter repeats it
            "Question: Which of these lives in water?\nOptions: (A) cat (B) salmon", "Answer: B",
            "Question: Which of these can fly?\nOptions: (A) owl (B) cat", "Answer: A",
            "Question: Which of these is a bird?\nOptions: (A) bat (B) owl", "Answer: (B) owl",
            "Question: Which of these is made of metal?\nOptions: (A) wood (B) copper", "Answer: B"
        ].join("\n");
        const dir = tmp();
        fs.writeFileSync(path.join(dir, "seeds.json"), JSON.stringify([
            { Question: "Which of these is a fish?\nOptions: (A) salmon (B) dolphin", Answer: "A" }
        ]));
        const { generated } = await runMultipleChoice(reply, dir);
        expect(generated.map((t) => t.question.split("\n")[0])).toEqual([
            "Which of these can fly?", "Which of these is made of metal?"
        ]);
    });

    it("gives up after five waves in a row that add no task, instead of running every round", async () => {
        const model = new RecordedModel("meta", Array.from({ length: 20 }, () => "Once upon a time, there was a little girl named Lily."));
        const logged: string[] = [];
        const context = { ...contextFor(model, seedsDir(), ["instruct.target=4", "instruct.max_rounds=20"]), log: (line: string) => logged.push(line) };
        const result = await instructStage.run(context, "recorded-idle");
        expect(model.remaining).toBe(15);
        expect(result.stats).toMatchObject({ generated: 0, rounds: 5 });
        expect(logged).toEqual([
            `instruct: 2 seeds from ${path.join(context.data.dirs[0]!, "seeds.json")}`,
            "instruct: stopped after 5 of 20 rounds: the last 5 waves of 1 gave no new task",
            "instruct: warning: the meta-agent's answers gave 0 new tasks in 5 rounds (target 4); tasks.arrow holds only the 2 seeds"
        ]);
    });

    it("grounded mode: questions written from corpus passages keep the passages the prompt showed", async () => {
        const dataDir = seedsDir();
        const pages = [
            { title: "Angel Falls", text: "Angel Falls is a waterfall in Venezuela. It is the world's tallest uninterrupted waterfall." },
            { title: "Venezuela", text: "Venezuela is a country on the northern coast of South America. Its capital is Caracas." },
            { title: "Abbey Road", text: "Abbey Road is the eleventh studio album by the English rock band the Beatles, released in 1969." },
            { title: "The Beatles", text: "The Beatles were an English rock band formed in Liverpool in 1960." }
        ];
        fs.writeFileSync(path.join(dataDir, "pages.jsonl"), pages.map((p) => JSON.stringify(p)).join("\n") + "\n");
        const reply = [
            "Sure! Here are 2 new examples based on the passages:",
            "",
            "Question 1: In which year was the band that released Abbey Road formed?",
            "Answer 1: 1960",
            "",
            "Question 2: What is the capital of the country where the world's tallest uninterrupted waterfall is?",
            "Answer 2: Caracas"
        ].join("\n");
        const model = new RecordedModel("meta", [reply]);
        const context = contextFor(model, dataDir, [
            "instruct.mode=grounded", "instruct.target=2", "instruct.per_round=2", "instruct.passages=2", "data.corpus=[pages.jsonl]"
        ]);
        await instructStage.run(context, "recorded-grounded");
        const prompt = model.prompts[0]!;
        expect(prompt).toContain("Passages:");
        expect(prompt).toMatch(/whose answers can be found in the passages above/);
        const shown = pages.filter((p) => prompt.includes(`[${p.title}] ${p.text}`))
            .sort((a, b) => prompt.indexOf(`[${a.title}]`) - prompt.indexOf(`[${b.title}]`));
        expect(shown).toHaveLength(2);
        const tasks = await readTable(context.runDir.file("tasks.arrow"), "tasks");
        const generated = tasks.filter((t) => t.source === "generated");
        expect(generated.map((t) => t.answer)).toEqual(["1960", "Caracas"]);
        for (const task of generated)
            expect(task.passages).toEqual(shown.map((p) => ({ title: p.title, text: p.text })));
        // The corpus the run built is recorded (no eval set here, so nothing to overlap).
        const manifest = JSON.parse(fs.readFileSync(context.runDir.file("manifest.json"), "utf8"));
        expect(manifest.corpus).toMatchObject({ pages: 4, overlap: { measured: 0, questions: 0 } });
    });
});
