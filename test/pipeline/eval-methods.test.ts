import { describe, expect, it } from "vitest";
import { evalMethods, type EvalRow } from "../../src/data/schemas.js";
import { evalMethodSpecs, needsAdapters, parseMethods } from "../../src/pipeline/eval-methods.js";
import { mainTable } from "../../src/pipeline/report.js";
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
        ], "qa");
        expect(table).toEqual([
            "| method | easy F1 | easy EM | medium F1 | medium EM | mean steps | invalid-action rate | n |",
            "|---|---|---|---|---|---|---|---|",
            "| CoT (zero-shot) | 50.0 | 0.0 | 0.0 | 0.0 | 1.00 | 0.0 | 2 |",
            "| AutoAct (group planning) | 100.0 | 100.0 | 25.0 | 0.0 | 5.00 | 12.5 | 2 |"
        ]);
        expect(mainTable([{ set: "g", rows: [row("react", "1-4", 1, 1, 2, 0)] }], "multiple-choice")[0]).toBe("| method | 1-4 accuracy | mean steps | invalid-action rate | n |");
    });
});
