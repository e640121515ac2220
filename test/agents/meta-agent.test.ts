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

    it("reads what instruct models write: bold labels, numbered labels, numbered lists, one-line pairs", () => {
        // Replies in the shapes Llama-3-Instruct, Qwen2.5-Instruct and Mistral-Instruct write.
        const bold = [
            "Here are 3 new examples of multi-hop questions:",
            "",
            "**Question:** What is the birth year of the director of the film \"Jaws\"?",
            "**Answer:** 1946",
            "",
            "**Question:** Which river flows through the capital of Hungary?",
            "**Answer:** Danube",
            "",
            "**Question:** Are both Lake Baikal and Lake Tanganyika rift lakes?",
            "**Answer:** Yes",
            "",
            "Let me know if you need more!"
        ].join("\n");
        expect(parseTaskPairs(bold)).toEqual([
            { question: "What is the birth year of the director of the film \"Jaws\"?", answer: "1946" },
            { question: "Which river flows through the capital of Hungary?", answer: "Danube" },
            { question: "Are both Lake Baikal and Lake Tanganyika rift lakes?", answer: "Yes" }
        ]);
        const numberedLabels = "Question 1: Who founded the company that makes the iPhone?\nAnswer 1: Steve Jobs\n\nQuestion 2: In which country was the author of Dracula born?\nAnswer 2: Ireland";
        expect(parseTaskPairs(numberedLabels)).toEqual([
            { question: "Who founded the company that makes the iPhone?", answer: "Steve Jobs" },
            { question: "In which country was the author of Dracula born?", answer: "Ireland" }
        ]);
        const numberedList = [
            "Sure! Here are some new examples:",
            "",
            "1. Which band released the album that contains the song \"Yesterday\"?",
            "   Answer: The Beatles",
            "2. What is the name of the university where Albert Einstein earned his doctorate?",
            "   Answer: University of Zurich",
            "3. **Question:** Who was older, Mark Twain or Charles Dickens?",
            "   **Answer:** Charles Dickens"
        ].join("\n");
        expect(parseTaskPairs(numberedList)).toEqual([
            { question: "Which band released the album that contains the song \"Yesterday\"?", answer: "The Beatles" },
            { question: "What is the name of the university where Albert Einstein earned his doctorate?", answer: "University of Zurich" },
            { question: "Who was older, Mark Twain or Charles Dickens?", answer: "Charles Dickens" }
        ]);
        const oneLine = "Question: What instrument did Miles Davis play? Answer: Trumpet\nQuestion: What is the capital of the country where the Taj Mahal is? Answer: New Delhi\n1. What language is spoken in Brazil? - Answer: Portuguese";
        expect(parseTaskPairs(oneLine)).toEqual([
            { question: "What instrument did Miles Davis play?", answer: "Trumpet" },
            { question: "What is the capital of the country where the Taj Mahal is?", answer: "New Delhi" },
            { question: "What language is spoken in Brazil?", answer: "Portuguese" }
        ]);
        // Options lines stay with their question; "A)" starts an option, not an answer.
        const science = "Question: Which of these is a mammal?\nOptions: (A) trout (B) whale\nAnswer: B\n\nQ: Which object is magnetic?\nA) a paper clip\nB) a rubber band\nA: A";
        expect(parseTaskPairs(science)).toEqual([
            { question: "Which of these is a mammal?\nOptions: (A) trout (B) whale", answer: "B" },
            { question: "Which object is magnetic?\nA) a paper clip\nB) a rubber band", answer: "A" }
        ]);
    });

    it("keeps a ScienceQA question's image caption and OCR out of its text, and shows them in the prompt", () => {
        const prompt = selfInstructPrompt({
            description: "Science questions", count: 2,
            examples: [{ question: "Which state is farthest north?\nOptions: (A) Ohio (B) Texas", answer: "A", image: { caption: "A map of the United States.", ocr: "Ohio Texas" } }]
        });
        expect(prompt).toContain("Question: Which state is farthest north?\nOptions: (A) Ohio (B) Texas\nCaption: A map of the United States.\nOCR: Ohio Texas\nAnswer: A");
        const reply = [
            "Question: Which animal in the picture can fly?",
            "Options: (A) the penguin (B) the robin",
            "Caption: A penguin standing next to a robin on a branch.",
            "OCR: none",
            "Answer: B",
            "",
            "Question: What is the boiling point of water at sea level?",
            "Options: (A) 100 degrees Celsius (B) 50 degrees Celsius",
            "Answer: A"
        ].join("\n");
        expect(parseTaskPairs(reply)).toEqual([
            { question: "Which animal in the picture can fly?\nOptions: (A) the penguin (B) the robin", answer: "B", image: { caption: "A penguin standing next to a robin on a branch.", ocr: "" } },
            { question: "What is the boiling point of water at sea level?\nOptions: (A) 100 degrees Celsius (B) 50 degrees Celsius", answer: "A" }
        ]);
    });

    it("rejects a second yes/no answer like the original, unless repeats are allowed", () => {
        const original = new TaskDeduplicator({ maxAnswerChars: 20 });
        expect(original.accept({ question: "Is water wet?", answer: "yes" })).toBe(true);
        expect(original.accept({ question: "Is fire hot?", answer: "Yes" })).toBe(false);
        const repeating = new TaskDeduplicator({ maxAnswerChars: 20, repeatYesNo: true });
        expect(repeating.accept({ question: "Is water wet?", answer: "yes" })).toBe(true);
        expect(repeating.accept({ question: "Is fire hot?", answer: "Yes" })).toBe(true);
        expect(repeating.accept({ question: "Is ice cold?", answer: "Paris" })).toBe(true);
        expect(repeating.accept({ question: "Capital of France?", answer: "Paris" })).toBe(false);
    });

    it("de-duplicates normalized questions and answers, keeps yes/no when allowed, applies the length rule", () => {
        const dedup = new TaskDeduplicator({ maxAnswerChars: 20, repeatYesNo: true });
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

describe("self-instruct parsing: the shapes the review found lost", () => {
    const danube = { question: "Which river flows through Budapest?", answer: "Danube" };
    it.each([
        ["an answer on the line after its label", "**Question 1:**\nWhich river flows through Budapest?\n\n**Answer:**\nDanube", [danube]],
        ["headings without colons", "### Question 1\nWhich river flows through Budapest?\n### Answer\nDanube", [danube]],
        ["a JSON list in a code fence", "```json\n[{\"question\": \"Which river flows through Budapest?\", \"answer\": \"Danube\"}]\n```", [danube]],
        ["Q: and A:", "Q: Which river flows through Budapest?\nA: Danube", [danube]],
        ["options written A: x after Question:", "Question: Which is a metal?\nOptions:\nA: wood\nB: copper\nAnswer: B", [{ question: "Which is a metal?\nOptions:\nA: wood\nB: copper", answer: "B" }]],
        ["a header that only starts like a label", "### Question-Answer Pairs\n1. Which river flows through Budapest?\nAnswer: Danube", [danube]]
    ])("%s", (_shape, text, pairs) => {
        expect(parseTaskPairs(text)).toEqual(pairs);
    });
});

describe("tool selection parsing", () => {
    const library = ["Search", "Retrieve", "Lookup", "Image2Text", "Calculator", "Code"];
    /** The picks of a reply, each with whether it came from the fallback. */
    const pickWith = (fallback: string[]) => (text: string) => parseToolSelection(text, library, 3, fallback).chosen.map((c) => [c.name, c.fallback]);
    it("matches names back to the library in order of appearance", () => {
        const parsed = parseToolSelection("1. retrieve\n2. **Lookup**\n3. search\nReason: multi-hop needs pages", library, 3, ["Search"]);
        expect(parsed.chosen.map((c) => [c.name, c.fallback])).toEqual([["Retrieve", false], ["Lookup", false], ["Search", false]]);
        expect(parsed.reason).toBe("multi-hop needs pages");
    });
    it("fills missing picks from the fallback and records them as such", () => {
        const parsed = parseToolSelection("Once upon a time, Lily had a Calculator.", library, 3, ["Search", "Retrieve", "Lookup"]);
        expect(parsed.chosen.map((c) => [c.name, c.fallback])).toEqual([["Calculator", false], ["Search", true], ["Retrieve", true]]);
        expect(parseToolSelection("nothing", library, 2, ["Search", "Retrieve"]).chosen.every((c) => c.fallback)).toBe(true);
    });
    it("ignores tools the answer rejects and takes the numbered list when there is one", () => {
        const pick = pickWith(["Search", "Retrieve", "Lookup"]);
        // The case: rejected tools named first, then the list.
        expect(pick("For multi-hop questions, Image2Text and Calculator are not needed since there are no images or numbers.\n1. Retrieve\n2. Lookup\n3. Search\nReason: pages hold the facts"))
            .toEqual([["Retrieve", false], ["Lookup", false], ["Search", false]]);
        // Prose only (Qwen-style), with rejections in several shapes.
        expect(pick("The most helpful tools are Search and Retrieve, and then Lookup to find the exact sentence. We don't need Code, and there is no need for Calculator."))
            .toEqual([["Search", false], ["Retrieve", false], ["Lookup", false]]);
        expect(pick("I would use Search, not Calculator. Image2Text is irrelevant here. Retrieve is useful as well."))
            .toEqual([["Search", false], ["Retrieve", false], ["Lookup", true]]);
        // A markdown list with explanations naming other tools: the first tool of each item.
        expect(pick("Here are the three tools:\n\n1. **Search**: finds pages when the title is unknown, better than Lookup.\n2. **Retrieve**: gets the page.\n3. **Calculator** (not needed, no arithmetic)\n4. **Lookup**: finds the sentence."))
            .toEqual([["Search", false], ["Retrieve", false], ["Lookup", false]]);
    });
    it("takes a bulleted list or a line that says what was picked over the prose and the reasons around it", () => {
        const pick = pickWith(["Search", "Retrieve", "Image2Text"]);
        // verbs are not tools: "search for or retrieve" in the prose before a bulleted list
        expect(pick("Science questions often come with images, and we may need to search for or retrieve background facts. I choose:\n- Image2Text\n- Search\n- Calculator"))
            .toEqual([["Image2Text", false], ["Search", false], ["Calculator", false]]);
        // the picks stated on one line, then a numbered list of why
        expect(pick("Selected tools: Image2Text, Search, Calculator\n\nWhy:\n1. Questions refer to an image.\n2. We need to search for facts (Retrieve would do too).\n3. Some need arithmetic."))
            .toEqual([["Image2Text", false], ["Search", false], ["Calculator", false]]);
        // the reason first, the picks after it
        expect(pick("Reason: pages hold the facts, so not Calculator.\nTools: Retrieve, Lookup, Search")).toEqual([["Retrieve", false], ["Lookup", false], ["Search", false]]);
        // one name per line, as the prompt asks, in lower case
        expect(pick("retrieve\nlookup\nsearch\nReason: multi-hop")).toEqual([["Retrieve", false], ["Lookup", false], ["Search", false]]);
    });
});

describe("chain-of-thought answers", () => {
    it("takes the last Answer: line, else the last line", () => {
        expect(parseChainOfThoughtAnswer("First... Answer: Rome\nWait.\nAnswer: Paris")).toBe("Paris");
        expect(parseChainOfThoughtAnswer("thinking\nParis\n")).toBe("Paris");
        expect(parseChainOfThoughtAnswer("  \n")).toBeNull();
    });

    it.each([
        ["Let me think.\nSo the answer is Paris.", "Paris."],
        ["Final Answer: The answer is Paris.", "Paris."],
        ["**Answer:** Paris", "Paris"],
        ["Answer: **B**", "B"],
        ["Answer: yes, both are in China.", "yes"],
        ["The answer is Washington, D.C.", "Washington, D.C."],
        ["Reasoning...\nAnswer: ", null],
        ["**Final Answer:**", null]
    ])("%j -> %j", (text, answer) => {
        expect(parseChainOfThoughtAnswer(text)).toBe(answer);
    });

    it("output cut by the token limit before an answer has none (its last line is reasoning)", () => {
        expect(parseChainOfThoughtAnswer("First, the director of Jaws is", { cut: true })).toBeNull();
        expect(parseChainOfThoughtAnswer("Answer: Paris\nAnd to check", { cut: true })).toBe("Paris");
    });
});
