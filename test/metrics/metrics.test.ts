import { describe, expect, it } from "vitest";
import { exactMatch, normalizeAnswer, scoreAnswer, textKey, tokenF1 } from "../../src/metrics/qa.js";
import { optionMatch, parseOption } from "../../src/metrics/choice.js";
import { choicesFromQuestion } from "../../src/pipeline/task-setup.js";
import { mean, meanByGroup } from "../../src/metrics/aggregate.js";

describe("HotpotQA normalization and exact match", () => {
    it.each([
        ["The Beatles", "beatles"],
        ["  An   apple,  a DAY! ", "apple day"],
        ["Badr Hari.", "badr hari"],
        ["theatre", "theatre"],
        ["Annapolis, Maryland", "annapolis maryland"],
        ["U.S.", "us"],
        ["\"Yes\"", "yes"],
        ["1,000", "1000"],
        // as the official script (Python, checked there): ASCII punctuation only, Unicode word boundaries
        ["Arthur’s Seat", "arthur’s seat"],
        ["«Les Misérables»", "«les misérables»"],
        ["éa b", "éa b"],
        ["Café the Olé", "café olé"],
        ["naïve a", "naïve"],
        ["a—b", "—b"],
        ["x_the", "xthe"]
    ])("%j -> %j", (input, expected) => {
        expect(normalizeAnswer(input)).toBe(expected);
    });

    it("compares normalized answers", () => {
        expect(exactMatch("the Badr Hari", "Badr Hari")).toBe(true);
        expect(exactMatch("Yes.", "yes")).toBe(true);
        expect(exactMatch("Badr", "Badr Hari")).toBe(false);
        // the score is the official script's; "the same text" (eval questions, answers seen before) is looser
        expect(exactMatch("Arthur’s Seat", "Arthur's Seat")).toBe(false);
        expect(textKey("Arthur’s Seat")).toBe(textKey("Arthur's Seat"));
        expect(textKey("«Les Misérables»?")).toBe("les misérables");
    });
});

describe("token F1", () => {
    it("scores partial overlap by hand-checked precision and recall", () => {
        // prediction: [barack, obama, jr] gold: [barack, obama] -> p 2/3, r 1, f1 0.8
        const partial = tokenF1("Barack Obama Jr.", "Barack Obama");
        expect(partial.precision).toBeCloseTo(2 / 3, 12);
        expect(partial.recall).toBe(1);
        expect(partial.f1).toBeCloseTo(0.8, 12);
        // prediction: [new, york] gold: [new, york, city] -> p 1, r 2/3, f1 0.8
        expect(tokenF1("the New York", "New York City").f1).toBeCloseTo(0.8, 12);
        // repeated tokens are counted once per occurrence: [a1, a1, b] vs [a1, b, c] -> same 2, p 2/3, r 2/3
        expect(tokenF1("a1 a1 b", "a1 b c").f1).toBeCloseTo(2 / 3, 12);
        expect(tokenF1("Paris", "London")).toEqual({ f1: 0, precision: 0, recall: 0 });
        expect(tokenF1("", "London").f1).toBe(0);
        expect(tokenF1("Badr Hari", "badr hari!").f1).toBe(1);
    });

    it("applies the official yes/no/noanswer rule", () => {
        expect(tokenF1("yes", "no").f1).toBe(0);
        expect(tokenF1("yes it is", "yes").f1).toBe(0);
        expect(tokenF1("no", "no doubt").f1).toBe(0);
        expect(tokenF1("noanswer", "an answer").f1).toBe(0);
        expect(tokenF1("Yes", "yes.").f1).toBe(1);
    });

    it("scoreAnswer gives EM with F1", () => {
        expect(scoreAnswer("Barack Obama Jr.", "Barack Obama")).toMatchObject({ em: 0, recall: 1 });
        expect(scoreAnswer("an Obama", "Obama")).toEqual({ em: 1, f1: 1, precision: 1, recall: 1 });
    });
});

describe("multiple-choice option match", () => {
    const choices = ["Harrisburg", "Dover", "Wilmington", "Georgetown"];

    it.each([
        ["B", 1], ["(B)", 1], ["B)", 1], ["B.", 1], ["b)", 1], ["(b)", 1], [" B ", 1],
        ["B. Dover", 1], ["(B) Dover", 1], ["Dover", 1], ["dover.", 1], ["The answer is (B).", 1],
        ["Answer: C", 2], ["The answer is Wilmington", 2], ["D: Georgetown", 3],
        ["E", undefined], ["Paris", undefined], ["", undefined], ["Dover or Wilmington", undefined], ["(A) or (B)", undefined],
        // markdown, quotes, a bare lowercase letter, a sentence that states the letter
        ["**B**", 1], ["'B'", 1], ['"B"', 1], ["`Dover`", 1], ["b", 1], ["B is correct", 1], ["(b) is the right answer", 1],
        ["I think the answer is B", 1], ["the answer is b.", 1], ["The answer is C because it is the capital", 2],
        // a letter and an option's text that disagree: the text decides, however the letter is written
        ["(C) Dover", 1], ["C. Dover", 1], ["C) Dover", 1],
        // "a" the article is not a letter inside a sentence
        ["the answer is a city in Delaware", undefined]
    ])("%j names option %s", (prediction, expected) => {
        expect(parseOption(prediction as string, choices)).toBe(expected);
    });

    it("tells apart options that differ only in case or punctuation by their text as written (ScienceQA 18864)", () => {
        expect(parseOption("Dear Reggie,", ["dear Reggie,", "Dear Reggie,"])).toBe(1);
        expect(parseOption("dear Reggie,", ["dear Reggie,", "Dear Reggie,"])).toBe(0);
        expect(parseOption("dear reggie", ["dear Reggie,", "Dear Reggie,"])).toBeUndefined();
    });

    it("prefers an option's text over a letter reading", () => {
        expect(parseOption("A", ["B", "A"])).toBe(1);
        expect(parseOption("a cat", ["dog", "cat"])).toBe(1);
    });

    it("matches predictions against a gold letter or gold option text", () => {
        expect(optionMatch("(B)", "B", choices)).toBe(true);
        expect(optionMatch("Dover", "B", choices)).toBe(true);
        expect(optionMatch("A", "B", choices)).toBe(false);
        expect(optionMatch("West Virginia", "A. West Virginia", ["West Virginia", "Louisiana"])).toBe(true);
        expect(optionMatch("B", "A. West Virginia", ["West Virginia", "Louisiana"])).toBe(false);
        expect(optionMatch("nonsense", "B", choices)).toBe(false);
    });
});

describe("aggregation", () => {
    it("averages metrics by group with an overall row", () => {
        const rows = [
            { level: "easy", em: true, f1: 1 },
            { level: "easy", em: false, f1: 0.5 },
            { level: "hard", em: false, f1: 0 }
        ];
        const stats = meanByGroup(rows, { groupOf: (r) => r.level, metrics: { em: (r) => r.em, f1: (r) => r.f1 } });
        expect(stats).toEqual([
            { group: "easy", count: 2, means: { em: 0.5, f1: 0.75 } },
            { group: "hard", count: 1, means: { em: 0, f1: 0 } },
            { group: "overall", count: 3, means: { em: 1 / 3, f1: 0.5 } }
        ]);
        expect(mean([])).toBe(0);
    });
});

describe("options written in a generated question", () => {
    it.each([
        ["Which is a mammal?\nOptions: (A) frog (B) dog", ["frog", "dog"]],
        ["Which is a fish? Options: A. salmon B. dolphin", ["salmon", "dolphin"]],
        ["Which is a fish?\nA) salmon\nB) dolphin\nC) trout", ["salmon", "dolphin", "trout"]],
        ["Which is a fish? (a) salmon (b) dolphin", ["salmon", "dolphin"]],
        ["Which conducts?\nChoices: (A) wood (B) copper", ["wood", "copper"]],
        ["Which conducts?\nOptions:\nA: wood\nB: copper", ["wood", "copper"]],
        ["Which vitamin? Options: (A) Vitamin C: citrus (B) Vitamin D: sun", ["Vitamin C: citrus", "Vitamin D: sun"]],
        ["Who served in the U.S. Army? A. Lincoln", null],
        ["Which is a mammal, a frog or a dog?", null]
    ])("%j", (question, choices) => {
        expect(choicesFromQuestion(question)).toEqual(choices);
    });
});
