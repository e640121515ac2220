import { describe, expect, it } from "vitest";
import { parseTaskPairs, parseToolSelection, TaskDeduplicator, selfInstructPrompt } from "../../src/agents/meta-agent.js";
import { parseChainOfThoughtAnswer } from "../../src/agents/cot.js";

describe("self-instruct parsing", () => {
    it("reads Question/Answer pairs, including multi-line questions", () => {
        const text = "Question: Who wrote Hamlet?\nAnswer: William Shakespeare\n\nQuestion: Which is a mammal?\nOptions: (A) trout (B) whale\nAnswer: B\nQuestion: dangling";
        expect(parseTaskPairs(text)).toEqual([
            { question: "Who wrote Hamlet?", answer: "William Shakespeare" },
            { question: "Which is a mammal?\nOptions: (A) trout (B) whale", answer: "B" }
        ]);
    });

    it("de-duplicates normalized questions and answers, keeps yes/no, applies the length rule", () => {
        const dedup = new TaskDeduplicator({ uniqueAnswers: true, maxAnswerChars: 20 });
        dedup.remember({ question: "Seed question?", answer: "Paris" });
        expect(dedup.accept({ question: "seed   QUESTION", answer: "Rome" })).toBe(false);
        expect(dedup.accept({ question: "Capital of France?", answer: "the Paris" })).toBe(false);
        expect(dedup.accept({ question: "Is water wet?", answer: "yes" })).toBe(true);
        expect(dedup.accept({ question: "Is fire hot?", answer: "Yes" })).toBe(true);
        expect(dedup.accept({ question: "Longest answer?", answer: "a very long answer of many words" })).toBe(false);
        expect(dedup.accept({ question: "Capital of Italy?", answer: "Rome" })).toBe(true);
    });

    it("shows passages in grounded mode", () => {
        const prompt = selfInstructPrompt({ description: "QA", examples: [{ question: "q?", answer: "a" }], count: 3, passages: [{ title: "Ohio", text: "A state." }] });
        expect(prompt).toContain("[Ohio] A state.");
        expect(prompt).toContain("Write 3 new examples");
    });
});

describe("tool selection parsing", () => {
    const library = ["Search", "Retrieve", "Lookup", "Image2Text", "Calculator", "Code"];
    it("matches names back to the library in order of appearance", () => {
        const parsed = parseToolSelection("1. retrieve\n2. **Lookup**\n3. search\nReason: multi-hop needs pages", library, 3, ["Search"]);
        expect(parsed.chosen.map((c) => [c.name, c.fallback])).toEqual([["Retrieve", false], ["Lookup", false], ["Search", false]]);
        expect(parsed.reason).toBe("multi-hop needs pages");
    });
    it("fills missing picks from the fallback and records them as such", () => {
        const parsed = parseToolSelection("Once upon a time, Lily had a calculator.", library, 3, ["Search", "Retrieve", "Lookup"]);
        expect(parsed.chosen.map((c) => [c.name, c.fallback])).toEqual([["Calculator", false], ["Search", true], ["Retrieve", true]]);
        expect(parseToolSelection("nothing", library, 2, ["Search", "Retrieve"]).chosen.every((c) => c.fallback)).toBe(true);
    });
});

describe("chain-of-thought answers", () => {
    it("takes the last Answer: line, else the last line", () => {
        expect(parseChainOfThoughtAnswer("First... Answer: Rome\nWait.\nAnswer: Paris")).toBe("Paris");
        expect(parseChainOfThoughtAnswer("thinking\nParis\n")).toBe("Paris");
        expect(parseChainOfThoughtAnswer("  \n")).toBeNull();
    });
});
