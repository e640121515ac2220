import { describe, expect, it } from "vitest";
import { runEpisode, observations, type PolicyStep, type StepPolicy, type ToolRunner } from "../../src/agents/episode.js";
import { ToolSession } from "../../src/tools/index.js";

/** A policy that replays fixed steps: the protocol is tested apart from any model. */
class ScriptedPolicy implements StepPolicy {
    readonly phases: string[] = [];
    constructor(private readonly steps: [string, string, string][]) {}
    async next(_history: string, phase: "solve" | "reflect"): Promise<PolicyStep> {
        this.phases.push(phase);
        const [thought, action, argument] = this.steps.shift() ?? ["", "", ""];
        return { thought, action, argument, promptTokens: 10, generatedTokens: 2, maxPromptTokens: 12 };
    }
}

const echoTools: ToolRunner = {
    names: ["Search"],
    resolve: (name) => (name.toLowerCase() === "search" ? "Search" : null),
    run: async (_name, argument) => `results for ${argument}`
};

function episode(steps: [string, string, string][], maxSteps = 10) {
    const policy = new ScriptedPolicy(steps);
    const result = runEpisode({
        header: "header\n", question: "q?", policy, tools: echoTools, session: new ToolSession(), maxSteps, maxContext: 4096, reserveTokens: 0
    });
    return { policy, result };
}

describe("Finish/Reflect protocol", () => {
    it("without reflection (the -reflection ablation) the first Finish ends the episode", async () => {
        const policy = new ScriptedPolicy([["look", "Search", "x"], ["done", "Finish", "Paris"], ["sure", "Reflect", "right"]]);
        const r = await runEpisode({
            header: "header\n", question: "q?", policy, tools: echoTools, session: new ToolSession(), maxSteps: 10, maxContext: 4096, reserveTokens: 0, reflection: false
        });
        expect(r.stopReason).toBe("finished");
        expect(r.finalAnswer).toBe("Paris");
        expect(r.steps.map((s) => s.action)).toEqual(["Search", "Finish"]);
        expect(policy.phases).toEqual(["solve", "solve"]);
    });

    it("first Finish asks for a reflection; Reflect[right] ends with that answer", async () => {
        const { policy, result } = episode([["look", "Search", "x"], ["done", "Finish", "Paris"], ["sure", "Reflect", "right"]]);
        const r = await result;
        expect(r.stopReason).toBe("finished");
        expect(r.finalAnswer).toBe("Paris");
        expect(r.steps.map((s) => s.action)).toEqual(["Search", "Finish", "Reflect"]);
        expect(r.steps[0]!.observation).toBe("results for x");
        expect(r.steps[1]!.observation).toBe(observations.reflect("Paris"));
        expect(policy.phases).toEqual(["solve", "solve", "reflect"]);
        expect(r.promptTokens).toBe(30);
        expect(r.generatedTokens).toBe(6);
    });

    it("Reflect[wrong] asks to solve again and the next Finish ends the episode", async () => {
        const r = await episode([["a", "Finish", "Rome"], ["b", "Reflect", "wrong"], ["c", "Search", "y"], ["d", "Finish", "Paris"]]).result;
        expect(r.stopReason).toBe("finished");
        expect(r.finalAnswer).toBe("Paris");
        expect(r.steps[1]!.observation).toBe(observations.retry);
    });

    it("a second Finish without Reflect ends the episode with the new answer", async () => {
        const r = await episode([["a", "Finish", "Rome"], ["b", "Finish", "Paris"]]).result;
        expect(r.stopReason).toBe("finished");
        expect(r.finalAnswer).toBe("Paris");
    });

    it("Reflect without Finish and unknown actions are invalid actions, and the episode goes on", async () => {
        const r = await episode([["a", "Reflect", "right"], ["b", "Fly", "away"], ["c", "Finish", "x"], ["d", "Reflect", "right"]]).result;
        expect(r.invalidActions).toBe(2);
        expect(r.steps[0]!.observation).toBe(observations.reflectWithoutFinish);
        expect(r.steps[1]!.observation).toBe(observations.unknown("Fly", ["Search"]));
        expect(r.finalAnswer).toBe("x");
    });

    it("stops at the step limit, keeping a pending answer", async () => {
        const r = await episode([["a", "Search", "1"], ["b", "Finish", "z"], ["c", "Search", "2"]], 3).result;
        expect(r.stopReason).toBe("step_limit");
        expect(r.finalAnswer).toBe("z");
        expect(r.steps).toHaveLength(3);
    });

    it("gives up after three unreadable actions in a row", async () => {
        const r = await episode([["a", "", ""], ["b", "", ""], ["c", "", ""], ["d", "Finish", "never"]]).result;
        expect(r.stopReason).toBe("invalid");
        expect(r.steps).toHaveLength(3);
    });

    it("Finish without an answer is an invalid action, not an empty answer", async () => {
        const r = await episode([["a", "Finish", ""], ["b", "Finish", "Paris"], ["c", "Reflect", "right"]]).result;
        expect(r.steps[0]!.observation).toBe(observations.emptyAnswer);
        expect(r.invalidActions).toBe(1);
        expect(r.finalAnswer).toBe("Paris");
        // a Reflect after Finish[] does not take the answer the model has just rejected
        const rejected = await episode([["a", "Finish", "Paris"], ["b", "Reflect", "wrong"], ["c", "Finish", ""], ["d", "Reflect", "right"], ["e", "Finish", "Rome"]]).result;
        expect(rejected.steps[3]!.observation).toBe(observations.reflectWithoutFinish);
        expect(rejected).toMatchObject({ stopReason: "finished", finalAnswer: "Rome" });
        const never = await episode([["a", "Finish", ""], ["b", "Finish", " "], ["c", "Finish", ""], ["d", "Finish", "late"]]).result;
        expect(never).toMatchObject({ stopReason: "invalid", finalAnswer: null });
    });

    it("gives up after three invalid actions of any kind in a row (prose read as an unknown tool included)", async () => {
        const r = await episode([["a", "I", "will look it up"], ["b", "", ""], ["c", "Reflect", "right"], ["d", "Search", "never"]]).result;
        expect(r.stopReason).toBe("invalid");
        expect(r.steps).toHaveLength(3);
        const reset = await episode([["a", "I", "x"], ["b", "", ""], ["c", "Search", "y"], ["d", "We", "z"], ["e", "Finish", "Paris"], ["f", "Reflect", "right"]]).result;
        expect(reset).toMatchObject({ stopReason: "finished", finalAnswer: "Paris", invalidActions: 3 });
    });

    it("records actions as the protocol and the tools spell them", async () => {
        const r = await episode([["a", "search", "x"], ["b", "FINISH", "Paris"], ["c", "reflect", "right"]]).result;
        expect(r.steps.map((s) => s.action)).toEqual(["Search", "Finish", "Reflect"]);
        expect(r.finalAnswer).toBe("Paris");
    });

    it("stops when the prompt nears the context limit", async () => {
        const policy = new ScriptedPolicy([["a", "Search", "x"], ["b", "Search", "y"]]);
        const r = await runEpisode({
            header: "h\n", question: "q", policy, tools: echoTools, session: new ToolSession(), maxSteps: 10, maxContext: 100, reserveTokens: 95
        });
        expect(r.stopReason).toBe("context_limit");
        expect(r.steps).toHaveLength(1);
    });
});
