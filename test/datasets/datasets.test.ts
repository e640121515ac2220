import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadTasks, ocrText, parseOptions } from "../../src/data/datasets/loaders.js";
import { hotpotqaSplitIds, readDatasetDescriptor } from "../../src/data/datasets/descriptor.js";
import { InputError } from "../../src/util/errors.js";
import { packageRoot } from "../../src/util/package.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-datasets-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, text);
    return file;
}

describe("generic JSONL tasks", () => {
    it("reads ids, choices, levels, images and extra keys", async () => {
        const file = write("custom.jsonl", [
            JSON.stringify({ question: "What is 2+2?", answer: 4, level: 1, topic: "math" }),
            "",
            JSON.stringify({ id: "q2", question: "Pick one", answer: "B", choices: ["x", "y"], image_caption: "A chart.", image_ocr: "42%" })
        ].join("\n"));
        expect(await loadTasks({ file })).toEqual([
            { id: "custom-1", question: "What is 2+2?", answer: "4", level: "1", meta: { topic: "math" } },
            { id: "q2", question: "Pick one", answer: "B", choices: ["x", "y"], image: { caption: "A chart.", ocr: "42%" } }
        ]);
    });

    it("names file and line for malformed, incomplete, duplicate and empty input", async () => {
        const bad = write("bad.jsonl", `${JSON.stringify({ question: "a", answer: "b" })}\n{"question": "c",\n`);
        await expect(loadTasks({ file: bad })).rejects.toThrow(new RegExp(`^${escape(bad)}:2: invalid JSON`));
        const missing = write("missing.jsonl", `${JSON.stringify({ question: "a", answer: "b" })}\n${JSON.stringify({ question: "c" })}\n`);
        await expect(loadTasks({ file: missing, format: "jsonl" })).rejects.toThrow(`${missing}:2: key "answer" must be a non-empty string`);
        const duplicate = write("dup.jsonl", `${JSON.stringify({ id: "x", question: "a", answer: "b" })}\n${JSON.stringify({ id: "x", question: "c", answer: "d" })}\n`);
        await expect(loadTasks({ file: duplicate })).rejects.toThrow(`${duplicate}:2: duplicate id "x" (first on line 1)`);
        const empty = write("empty.jsonl", "");
        await expect(loadTasks({ file: empty })).rejects.toThrow(`${empty}: the file is empty`);
        const blank = write("blank.jsonl", "\n\n  \n");
        await expect(loadTasks({ file: blank })).rejects.toBeInstanceOf(InputError);
        await expect(loadTasks({ file: path.join(tmp, "nope.jsonl") })).rejects.toThrow(/dataset file not found/);
        const unknown = write("unknown.jsonl", `${JSON.stringify({ foo: 1 })}\n`);
        await expect(loadTasks({ file: unknown })).rejects.toThrow(`${unknown}:1: cannot tell the dataset format`);
        const emptyArray = write("empty-array.json", "[ ]");
        await expect(loadTasks({ file: emptyArray })).rejects.toThrow(`${emptyArray}: the JSON array is empty`);
        const truncated = write("truncated.json", `[\n${JSON.stringify({ Question: "q", Answer: "a" })},\n{"Question": "r"`);
        await expect(loadTasks({ file: truncated })).rejects.toThrow(`${truncated}:3: the JSON array is truncated`);
    });

    it("selects by ids in the given order and applies a limit", async () => {
        const file = write("ids.jsonl", ["a", "b", "c"].map((id) => JSON.stringify({ id, question: `q ${id}`, answer: id })).join("\n"));
        expect((await loadTasks({ file, ids: ["c", "a"] })).map((t) => t.id)).toEqual(["c", "a"]);
        expect((await loadTasks({ file, limit: 2 })).map((t) => t.id)).toEqual(["a", "b"]);
        await expect(loadTasks({ file, ids: ["a", "zz"] })).rejects.toThrow(/1 requested id\(s\) not in the file, e.g. "zz"/);
    });
});

describe("binary input", () => {
    it("an Arrow file given as tasks: not a JSON file, no raw bytes in the message", async () => {
        const arrow = path.join(tmp, "tasks.arrow");
        fs.writeFileSync(arrow, Buffer.concat([Buffer.from("ARROW1\0\0"), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0])]));
        await expect(loadTasks({ file: arrow })).rejects.toThrow(new RegExp(`^${escape(arrow)}: not a JSON file \\(binary content\\)$`));
    });
});

describe("HotpotQA official JSON shape", () => {
    it("maps _id, context and supporting facts", async () => {
        const rows = [{
            _id: "abc", question: "Who?", answer: "Him", type: "bridge", level: "hard",
            supporting_facts: [["T1", 0]], context: [["T1", ["First sentence.", " Second one."]], ["T2", ["Other."]]]
        }];
        const file = write("dev.json", JSON.stringify(rows, null, 2));
        expect(await loadTasks({ file })).toEqual([{
            id: "abc", question: "Who?", answer: "Him", level: "hard",
            context: [{ title: "T1", sentences: ["First sentence.", "Second one."] }, { title: "T2", sentences: ["Other."] }],
            meta: { type: "bridge", supportingFacts: [["T1", 0]] }
        }]);
        const badContext = write("dev-bad.json", JSON.stringify([{ ...rows[0], context: [["T1", "not a list"]] }]));
        await expect(loadTasks({ file: badContext })).rejects.toThrow(`${badContext}:1: context[0] must be [title, [sentences]]`);
    });
});

describe("ScienceQA helpers", () => {
    it("parses options and OCR dumps", () => {
        expect(parseOptions("What is the capital of Delaware?\nOptions: (A) Harrisburg (B) Dover (C) Wilmington")).toEqual(["Harrisburg", "Dover", "Wilmington"]);
        expect(parseOptions("No options here")).toBeNull();
        expect(ocrText("[([[307, 253], [361, 253], [361, 265], [307, 265]], 'Oklahoma', 0.71), ([[1, 2], [3, 4]], \"Rock 'n' roll\", 0.9)]")).toBe("Oklahoma Rock 'n' roll");
        expect(ocrText("[]")).toBe("");
    });
});

describe("descriptors", () => {
    it("records the HotpotQA split ids and offers no official ScienceQA download it cannot read", () => {
        const hotpotqa = readDatasetDescriptor("hotpotqa");
        expect(hotpotqa.official?.url).toMatch(/hotpot_dev_distractor_v1\.json$/);
        expect(hotpotqaSplitIds("easy")).toHaveLength(100);
        expect(hotpotqaSplitIds("medium")).toHaveLength(100);
        expect(() => hotpotqaSplitIds("hard")).toThrow(/no question ids recorded for level "hard"/);
        // ScienceQA's own problems.json is no loadTasks file: no download stands in for the eval files
        expect(readDatasetDescriptor("scienceqa").official).toBeUndefined();
    });
});

const shared = path.resolve(packageRoot, "../shared/datasets");
const hasShared = fs.existsSync(path.join(shared, "hotpotqa/easy.jsonl")) && fs.existsSync(path.join(shared, "scienceqa/grade1-4.json"));
if (!hasShared)
    console.log(`skipping the shared dataset tests: ${shared} is absent`);

describe.skipIf(!hasShared)("shared datasets (../shared)", () => {
    it("loads the BOLAA HotpotQA files, matching the ids the descriptor records", async () => {
        for (const level of ["easy", "medium"]) {
            const tasks = await loadTasks({ file: path.join(shared, `hotpotqa/${level}.jsonl`) });
            expect(tasks).toHaveLength(100);
            expect(tasks.map((t) => t.id)).toEqual(hotpotqaSplitIds(level));
            expect(tasks.every((t) => t.level === level && (t.context?.length ?? 0) >= 2)).toBe(true);
            const selected = await loadTasks({ file: path.join(shared, `hotpotqa/${level}.jsonl`), ids: hotpotqaSplitIds(level).slice(0, 3) });
            expect(selected.map((t) => t.id)).toEqual(hotpotqaSplitIds(level).slice(0, 3));
        }
        const [first] = await loadTasks({ file: path.join(shared, "hotpotqa/easy.jsonl"), limit: 1 });
        expect(first).toMatchObject({ id: "5a832c3455429954d2e2ec41", answer: "Badr Hari", level: "easy", meta: { type: "bridge" } });
        expect(first!.context![0]!.sentences[1]).toBe("The show took place on September 18, 1998, in Madero, Tamaulipas, Mexico.");
    });

    it("loads ScienceQA with letters, choices, grade bands and images", async () => {
        const tasks = await loadTasks({ file: path.join(shared, "scienceqa/grade1-4.json") });
        expect(tasks).toHaveLength(120);
        expect(tasks[0]).toMatchObject({
            id: "5890", answer: "B", choices: ["Harrisburg", "Dover", "Wilmington", "Georgetown"], level: "1-4",
            image: { caption: "A painting of an animal with a flower in it.", ocr: "" },
            meta: { grade: 4, subject: "social science", pid: "5890" }
        });
        expect(tasks.filter((t) => t.image == null).length).toBe(61);
        expect(tasks.every((t) => parseOptions(t.question)?.length === t.choices!.length)).toBe(true);
        const fiveToEight = await loadTasks({ file: path.join(shared, "scienceqa/grade5-8.json") });
        expect(new Set(fiveToEight.map((t) => t.level))).toEqual(new Set(["5-8"]));
        expect(fiveToEight.some((t) => (t.image?.ocr ?? "").length > 0)).toBe(true);
    });

    it("loads both seeds files", async () => {
        const hotpotqa = await loadTasks({ file: path.join(shared, "hotpotqa/seeds.json") });
        expect(hotpotqa).toEqual([
            { id: "seeds-1", question: expect.stringMatching(/^from 1969 to 1979, Arno Schmidt/), answer: "Manhattan" },
            { id: "seeds-2", question: "Are both Shangri-La City and Ma'anshan cities in China?", answer: "yes" }
        ]);
        const scienceqa = await loadTasks({ file: path.join(shared, "scienceqa/seeds.json") });
        expect(scienceqa[0]).toMatchObject({ answer: "A. West Virginia", choices: ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], level: "1-4" });
        expect(scienceqa[0]!.image?.ocr).toBe("Oklahoma West Virginia Arizona Louisiana");
    });
});

function escape(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
