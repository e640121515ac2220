import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeTable } from "../../src/data/table-io.js";
import { loadConfig } from "../../src/pipeline/config.js";
import { RunDir } from "../../src/pipeline/run-dir.js";
import { packageRoot } from "../../src/util/package.js";
import { describe, expect, it } from "vitest";
import { evalMethods, type EvalRow } from "../../src/data/schemas.js";
import { evalMethodSpecs, needsAdapters, parseMethods } from "../../src/pipeline/eval-methods.js";
import { evalTable, mainTable, writeReport } from "../../src/pipeline/report.js";
import { InputError } from "../../src/util/errors.js";

describe("evaluation methods", () => {
    it("--methods reads names, lists and all; an unknown name is one clear error", () => {
        expect(parseMethods(["all"])).toEqual([...evalMethods]);
        expect(parseMethods(["group,react", "ablate-multi"])).toEqual(["group", "react", "ablate-multi"]);
        expect(() => parseMethods(["group", "reflexion"])).toThrow(InputError);
        expect(() => parseMethods(["reflexion"])).toThrow(/--methods reflexion: unknown method/);
    });

    it("says which ablations need adapters of their own", () => {
        expect(needsAdapters(["group", "ablate-finetune", "ablate-reflection"], "multi")).toBe(false);
        expect(needsAdapters(["ablate-multi"], "multi")).toBe(true);
        expect(needsAdapters(["ablate-filtering"], "unfiltered")).toBe(true);
        expect(evalMethodSpecs["ablate-reflection"]).toMatchObject({ policy: "group", adapters: "trained", reflection: false });
    });

    it("lays the rows out as the paper's main table: methods in its order, by level", () => {
        const row = (method: EvalRow["method"], level: string, f1: number, em: number, steps: number, invalid: number): EvalRow => ({
            method, task_id: `${method}-${level}`, level, question: "q", gold: "a", prediction: "a", em, f1, correct: em === 1,
            steps, invalid_actions: invalid, stop_reason: "finished", prompt_tokens: 1, generated_tokens: 1, time_ms: 1, trajectory: null
        });
        const table = mainTable([
            { set: "easy", rows: [row("group", "easy", 1, 1, 4, 1), row("cot", "easy", 0.5, 0, 1, 0)] },
            { set: "medium", rows: [row("group", "medium", 0.25, 0, 6, 0), row("cot", "medium", 0, 0, 1, 0)] }
        ], { kind: "qa", metric: "f1" });
        expect(table).toEqual([
            "| method | easy F1 | easy EM | medium F1 | medium EM | all F1 | all EM | mean steps | invalid-action rate | n |",
            "|---|---|---|---|---|---|---|---|---|---|",
            "| CoT (zero-shot) | 50.0 | 0.0 | 0.0 | 0.0 | 25.0 | 0.0 | 1.00 | 0.0 | 2 |",
            "| AutoAct (group planning) | 100.0 | 100.0 | 25.0 | 0.0 | 62.5 | 50.0 | 5.00 | 12.5 | 2 |"
        ]);
        expect(mainTable([{ set: "g", rows: [row("react", "1-4", 1, 1, 2, 0)] }], { kind: "multiple-choice", metric: "option" })[0]).toBe("| method | 1-4 accuracy | mean steps | invalid-action rate | n |");
        // a method meant to load adapters that ran without any says so
        expect(mainTable([{ set: "g", rows: [row("group", "easy", 1, 1, 2, 0)] }], { kind: "qa", metric: "f1" }, false)[2]).toMatch(/^\| AutoAct \(group planning\) \(no adapters: the base model\) \|/);
        // episodes cut by the context are counted apart
        expect(evalTable([{ ...row("react", "easy", 0, 0, 0, 0), stop_reason: "context_limit" }])).toContain("| react | overall | 1 | 0.0 | 0.0 | 0.0 | 0.00 | 0.0 | 0.0 | 100.0 | 1000.0 | 0.0 |");
        // the task's metric first
        expect(mainTable([{ set: "g", rows: [row("react", "easy", 1, 1, 2, 0)] }], { kind: "qa", metric: "em" })[0]).toBe("| method | easy EM | easy F1 | mean steps | invalid-action rate | n |");
    });

    it("the report's main table takes the sets in the config's order (easy, medium, hard), not the files' alphabetical one", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-report-"));
        const runDir = new RunDir(dir);
        const row = (level: string): EvalRow => ({
            method: "group", task_id: level, level, question: "q", gold: "a", prediction: "a", em: 1, f1: 1, correct: true,
            steps: 1, invalid_actions: 0, stop_reason: "finished", prompt_tokens: 1, generated_tokens: 1, time_ms: 1, trajectory: null
        });
        for (const level of ["easy", "medium", "hard"])
            await writeTable(runDir.file(`eval-${level}.arrow`), "eval", [row(level)]);
        // the report shows the tables of the eval run that finished
        runDir.updateStage("eval", () => ({
            status: "done", inputHash: "h", startedAt: "", outputs: Object.fromEntries(["hard", "medium", "easy"].map((level) => [`eval-${level}.arrow`, { rows: 1 }]))
        }));
        const { config } = loadConfig(path.join(packageRoot, "pipelines", "hotpotqa.yaml"), {
            set: ["data.eval=[{name: easy, format: hotpotqa, file: easy.jsonl}, {name: medium, format: hotpotqa, file: medium.jsonl}, {name: hard, format: hotpotqa, file: hard.jsonl}]"]
        });
        const report = fs.readFileSync(await writeReport(runDir, config), "utf8");
        expect(report).toContain("| method | easy F1 | easy EM | medium F1 | medium EM | hard F1 | hard EM | all F1 | all EM |");
        fs.rmSync(dir, { recursive: true, force: true });
    });
});

