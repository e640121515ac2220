import { describe, expect, it } from "vitest";
import { observations } from "../../src/agents/episode.js";
import { reactExemplars } from "../../src/agents/exemplars.js";
import { renderTaskHeader, type EpisodeStep } from "../../src/agents/react-format.js";

const tools = [{ name: "Search", signature: "Search[query]", description: "Searches.", example: "Search[x]" }];

/** A right trajectory whose first answer was judged wrong and then solved again. */
const retried: EpisodeStep[] = [
    { thought: "Look it up.", action: "Search", argument: "Hamlet author", observation: "Hamlet is by Shakespeare." },
    { thought: "Marlowe.", action: "Finish", argument: "Marlowe", observation: observations.reflect("Marlowe") },
    { thought: "The page said Shakespeare.", action: "Reflect", argument: "wrong", observation: observations.retry },
    { thought: "Check again.", action: "Search", argument: "Hamlet", observation: "Hamlet, a play by William Shakespeare." },
    { thought: "Shakespeare.", action: "Finish", argument: "William Shakespeare", observation: observations.finished }
];

describe("plain ReAct, the baselines' prompt", () => {
    it("the header names no Reflect; AutoAct's does", () => {
        expect(renderTaskHeader({ description: "Answer.", kind: "qa", tools })).toContain("(3) Reflect[right] or Reflect[wrong]");
        const plain = renderTaskHeader({ description: "Answer.", kind: "qa", tools, reflection: false });
        expect(plain).not.toMatch(/reflect/i);
        expect(plain).toContain("(2) Finish[answer]");
    });

    it("few-shot exemplars keep the work and end with the last Finish, without Reflect and its answers", () => {
        const plain = reactExemplars([{ question: "Who wrote Hamlet?", answer: "William Shakespeare", steps: retried }], { reflection: false });
        expect(plain).not.toMatch(/reflect|Marlowe|solve the question again/i);
        expect(plain).toBe([
            "Solved examples:",
            "Question: Who wrote Hamlet?",
            "Thought: Look it up.", "Action: Search[Hamlet author]", "Observation: Hamlet is by Shakespeare.",
            "Thought: Check again.", "Action: Search[Hamlet]", "Observation: Hamlet, a play by William Shakespeare.",
            "Thought: Shakespeare.", "Action: Finish[William Shakespeare]", "Observation: Episode finished.",
            "", "Now the question to solve.", ""
        ].join("\n"));
        // a seed without a trajectory: Finish with its answer, which ends it
        expect(reactExemplars([{ question: "Q?", answer: "A" }], { reflection: false })).toContain("Action: Finish[A]\nObservation: Episode finished.\n");
        // AutoAct's own exemplars keep the protocol
        expect(reactExemplars([{ question: "Who wrote Hamlet?", answer: "William Shakespeare", steps: retried }])).toContain("Action: Reflect[wrong]");
    });

    it("an unknown action is told the actions there are: no Reflect for plain ReAct", () => {
        expect(observations.unknown("Google", ["Search"], false)).toBe("Invalid action: Google is not available. Use one of: Search, Finish.");
        expect(observations.unknown("Google", ["Search"])).toBe("Invalid action: Google is not available. Use one of: Search, Finish, Reflect.");
    });
});
