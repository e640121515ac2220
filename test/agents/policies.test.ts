import { describe, expect, it } from "vitest";
import { runEpisode, type ToolRunner } from "../../src/agents/episode.js";
import { GroupPolicy, MetaAgentPolicy, cleanThought } from "../../src/agents/policies.js";
import { renderTaskHeader } from "../../src/agents/react-format.js";
import { ToolSession } from "../../src/tools/index.js";
import { RecordedModel } from "../helpers/recorded-model.js";
import path from "node:path";
import { loadConfig } from "../../src/pipeline/config.js";
import { groupPolicy } from "../../src/pipeline/stages/eval.js";
import { packageRoot } from "../../src/util/package.js";

const header = renderTaskHeader({
    description: "Answer questions.",
    kind: "qa",
    tools: [{ name: "Search", signature: "Search[query]", description: "Searches.", example: "Search[x]" }]
});
const sampling = { temperature: 0, maxTokens: 64, seed: 1 };

/** Search answers with `observation` (long ones fill the context). */
const searchTool = (observation: string): ToolRunner => ({
    names: ["Search"],
    resolve: (name) => (name.toLowerCase() === "search" ? "Search" : null),
    run: async () => observation
});

describe("what the policies make of model text", () => {
    it("a thought keeps neither a repeated label nor the action a chat model runs on into", () => {
        expect(cleanThought(" Thought: I should search for Jaws.")).toBe("I should search for Jaws.");
        expect(cleanThought("Thought 3: I should search.")).toBe("I should search.");
        expect(cleanThought(" I will finish. Action: Finish[1844]")).toBe("I will finish.");
        expect(cleanThought("It was 1844. Observation 2: more")).toBe("It was 1844.");
        // words that only look like labels stay
        expect(cleanThought("No action is needed; the thought stands.")).toBe("No action is needed; the thought stands.");
    });

    it("a step whose prompt no longer fits ends the episode as context_limit: no empty step, the pending answer kept", async () => {
        const contextSize = 1000; // characters (the recording counts them as tokens): the reflect agent's first prompt is the first over
        // plan: a search, then Finish; tool: the arguments; reflect: never reached (its prompt would not fit)
        const plan = new RecordedModel("plan", [" Find the director.", " Search", " He is Spielberg.", " Finish"], { contextSize });
        const tool = new RecordedModel("tool", ["Jaws director]", "Steven Spielberg]"], { contextSize });
        const reflect = new RecordedModel("reflect", [" It is right.", " Reflect[right]"], { contextSize });
        const policy = new GroupPolicy({ plan: plan.agent(), tool: tool.agent(), reflect: reflect.agent() }, sampling);
        const result = await runEpisode({
            header, question: "Who directed Jaws?", policy, tools: searchTool("Jaws is a film by Steven Spielberg. ".repeat(8)),
            session: new ToolSession(), maxSteps: 10, maxContext: 1_000_000, reserveTokens: 0
        });
        expect(result.steps.map((s) => s.action)).toEqual(["Search", "Finish"]);
        expect(result.stopReason).toBe("context_limit");
        expect(result.finalAnswer).toBe("Steven Spielberg");
        expect(result.invalidActions).toBe(0);
        expect(reflect.remaining).toBe(2);
    });

    it("the same for the meta-agent's policy, before an answer", async () => {
        const model = new RecordedModel("meta", [" Find the director.", "Search[Jaws director]", " More.", "Search[x]"], { contextSize: 700 });
        const result = await runEpisode({
            header, question: "Who directed Jaws?", policy: new MetaAgentPolicy(model.agent(), sampling), tools: searchTool("Jaws. ".repeat(100)),
            session: new ToolSession(), maxSteps: 10, maxContext: 1_000_000, reserveTokens: 0
        });
        expect(result.steps).toHaveLength(1);
        expect(result.stopReason).toBe("context_limit");
        expect(result.finalAnswer).toBeNull();
    });

    it("group planning asks as the run divided its samples: with split.finish_by plan the plan agent writes Finish's answer (eval and autoact agent alike)", async () => {
        const config = (finishBy: string) => loadConfig(path.join(packageRoot, "pipelines", "hotpotqa.yaml"), { set: [`split.finish_by=${finishBy}`] }).config;
        const ask = async (finishBy: string) => {
            const plan = new RecordedModel("plan", [" It is Hawaii.", " Finish[Hawaii]"]);
            const tool = new RecordedModel("tool", ["Honolulu]"]);
            const reflect = new RecordedModel("reflect", []);
            const step = await groupPolicy(config(finishBy), { plan: plan.agent(), tool: tool.agent(), reflect: reflect.agent() }, sampling).next(header, "solve");
            return { argument: step.argument, toolAsked: tool.prompts.length };
        };
        expect(await ask("plan")).toEqual({ argument: "Hawaii", toolAsked: 0 });
        expect(await ask("tool")).toEqual({ argument: "Honolulu", toolAsked: 1 });
    });
});
