import { describe, expect, it } from "vitest";
import { divideTrajectory } from "../../src/agents/division.js";
import { actionPrompt, argumentPrompt, renderHistory, renderTaskHeader, thoughtPrompt } from "../../src/agents/react-format.js";
import { closeArgument } from "../../src/tools/parse.js";

const header = renderTaskHeader({
    description: "Answer questions.",
    kind: "qa",
    tools: [{ name: "Search", signature: "Search[query]", description: "Searches.", example: "Search[x]" }]
});
const steps = [
    { thought: "Find the film.", action: "Search", argument: "Jaws director", observation: "Steven Spielberg directed Jaws." },
    { thought: "Unknown tool.", action: "Fly", argument: "x", observation: "Invalid action: Fly is not available." },
    { thought: "It is Spielberg's state.", action: "Finish", argument: "Ohio", observation: "Answer recorded." },
    { thought: "Born in Cincinnati, Ohio.", action: "Reflect", argument: "right", observation: "Episode finished." }
];

describe("division of labor", () => {
    const samples = divideTrajectory(header, "Where was the director of Jaws born?", steps);

    it("cuts plan, tool and reflect samples as the reference describes, skipping invalid steps; the tool agent writes Finish's answer", () => {
        expect(samples.map((s) => `${s.agent}:${s.kind}:${s.output}`)).toEqual([
            "plan:thought:Find the film.",
            "plan:action:Search",
            "tool:argument:Jaws director]",
            "plan:thought:It is Spielberg's state.",
            "plan:action:Finish",
            "tool:argument:Ohio]",
            "reflect:reflection:Born in Cincinnati, Ohio.",
            "reflect:verdict:Reflect[right]"
        ]);
        const history2 = renderHistory(header, "Where was the director of Jaws born?", steps.slice(0, 2));
        expect(samples[5]!.input).toBe(argumentPrompt(history2, "It is Spielberg's state.", "Finish"));
    });

    it("with finish_by plan, the plan agent writes Finish[answer] whole", () => {
        const byPlan = divideTrajectory(header, "Where was the director of Jaws born?", steps, { finishBy: "plan" });
        expect(byPlan.filter((s) => s.step === 2).map((s) => `${s.agent}:${s.kind}:${s.output}`)).toEqual([
            "plan:thought:It is Spielberg's state.",
            "plan:action:Finish[Ohio]"
        ]);
    });

    it("builds inputs with the very prompt functions group planning asks with", () => {
        const history0 = renderHistory(header, "Where was the director of Jaws born?", []);
        expect(samples[0]!.input).toBe(thoughtPrompt(history0));
        expect(samples[1]!.input).toBe(actionPrompt(history0, "Find the film."));
        expect(samples[2]!.input).toBe(argumentPrompt(history0, "Find the film.", "Search"));
        const history3 = renderHistory(header, "Where was the director of Jaws born?", steps.slice(0, 3));
        expect(samples[6]!.input).toBe(thoughtPrompt(history3));
        expect(samples.every((s) => s.input.startsWith(header))).toBe(true);
    });

    it("a step without a thought gives no samples, and an empty argument no tool sample (as the original's filter)", () => {
        const sparse = [
            { thought: "", action: "Search", argument: "Jaws", observation: "Jaws is a film." },
            { thought: "Look it up.", action: "Search", argument: "", observation: "No results." },
            ...steps.slice(2)
        ];
        const cut = divideTrajectory(header, "Where was the director of Jaws born?", sparse);
        expect(cut.filter((s) => s.step < 2).map((s) => `${s.agent}:${s.kind}:${s.output}`)).toEqual(["plan:thought:Look it up.", "plan:action:Search"]);
        expect(cut.every((s) => s.output !== "" && s.output !== "]")).toBe(true);
    });

    it("the tool agent's trained output closes back to the argument", () => {
        expect(closeArgument(samples[2]!.output, "Search")).toBe("Jaws director");
        expect(closeArgument("f(a[1]) ] trailing", "Calculator")).toBe("f(a[1])");
        // in Code, a bracket inside a string literal is the code's
        expect(closeArgument('console.log("a]b".split("]").length)] and more', "Code")).toBe('console.log("a]b".split("]").length)');
    });
});
