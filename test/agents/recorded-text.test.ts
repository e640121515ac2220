import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runEpisode, type ToolRunner } from "../../src/agents/episode.js";
import { GroupPolicy, MetaAgentPolicy } from "../../src/agents/policies.js";
import { divideTrajectory, type FinishBy } from "../../src/agents/division.js";
import { renderTaskHeader, type EpisodeStep } from "../../src/agents/react-format.js";
import { parseScratchpad } from "../../src/pipeline/import-original.js";
import { parseAction } from "../../src/tools/parse.js";
import { createToolLibrary, ToolSession } from "../../src/tools/index.js";
import { packageRoot } from "../../src/util/package.js";
import { RecordedModel } from "../helpers/recorded-model.js";

/**
 * The original AutoAct's Llama-2-13B sub-agents' own text (../shared/fixtures) drives the
 * logic that reads model text: action parsing, the synthesis policy, group planning with
 * its reflect branch, and the identity of training samples and inference prompts.
 */
const fixture = path.resolve(packageRoot, "../shared/fixtures/autoact-original/group-planning-13b-medium.jsonl");
const haveFixture = fs.existsSync(fixture);
if (!haveFixture)
    console.warn(`skipping the tests on the original's model text: ${fixture} is absent`);
const rows: { question: string; answer: string; correct: boolean; prompt: string }[] = haveFixture
    ? fs.readFileSync(fixture, "utf8").trim().split("\n").map((line) => JSON.parse(line))
    : [];

const library = createToolLibrary();
const header = renderTaskHeader({ description: "Answer multi-hop questions.", kind: "qa", tools: library.select(["Search", "Retrieve", "Lookup"]) });
const sampling = { temperature: 0.5, maxTokens: 128, seed: 1 };

/** The recorded lines after "Question:", BingSearch written as this library's Search. */
function recordedLines(prompt: string): { label: string; text: string }[] {
    const body = prompt.slice(prompt.search(/\nQuestion:/) + 1).split("\n").slice(1);
    return body.map((line) => /^(Thought|Action|Observation):(.*)$/.exec(line)).filter((m) => m != null)
        .map((m) => ({ label: m![1]!, text: m![2]!.replace(/\bBing[Ss]earch\b/g, "Search") }));
}

/** Tools that answer with the recorded observations, in order. */
function recordedTools(steps: readonly EpisodeStep[]): ToolRunner & { calls: string[] } {
    const queue = steps.filter((s) => !["finish", "reflect"].includes(s.action.toLowerCase())).map((s) => s.observation);
    const calls: string[] = [];
    return {
        calls,
        names: ["Search", "Retrieve", "Lookup"],
        resolve: (name) => ["Search", "Retrieve", "Lookup"].find((t) => t.toLowerCase() === name.toLowerCase()) ?? null,
        run: async (name, argument) => {
            calls.push(`${name}[${argument}]`);
            return queue.shift() ?? "no recorded observation";
        }
    };
}

const episodeOptions = { header, maxSteps: 15, maxContext: 1_000_000, reserveTokens: 0 };

describe.skipIf(!haveFixture)("the original's model text", () => {
    it("every Action line the 13B sub-agents wrote parses into a name and an argument", () => {
        const names = new Map<string, number>();
        let actions = 0;
        for (const row of rows) {
            for (const line of row.prompt.split("\n").filter((l) => l.startsWith("Action:"))) {
                const parsed = parseAction(line);
                expect(parsed, line).not.toBeNull();
                expect(parsed!.complete, line).toBe(true);
                expect(parsed!.argument.length, line).toBeGreaterThan(0);
                names.set(parsed!.name, (names.get(parsed!.name) ?? 0) + 1);
                actions++;
            }
        }
        expect(Object.fromEntries(names)).toEqual({ BingSearch: 64, Retrieve: 22, Lookup: 30, Finish: 40, Reflect: 44 });
        expect(actions).toBe(200);
    });

    it("the synthesis policy replays recorded episodes step for step (an early Reflect is an invalid action)", async () => {
        for (const index of [0, 3, 24]) {
            const row = rows[index]!;
            const recorded = await parseScratchpad(row.prompt);
            const lines = recordedLines(row.prompt).filter((l) => l.label !== "Observation");
            const model = new RecordedModel("meta", lines.map((l) => l.text));
            const tools = recordedTools(recorded.steps);
            const result = await runEpisode({
                ...episodeOptions, question: row.question, policy: new MetaAgentPolicy(model.agent(), sampling), tools, session: new ToolSession()
            });
            expect(result.steps.map((s) => [s.thought, s.action, s.argument])).toEqual(recorded.steps.map((s) => [s.thought, s.action, s.argument]));
            expect(result.steps.map((s) => s.observation)).toEqual(recorded.steps.map((s) => s.observation));
            expect(result.finalAnswer).toBe(recorded.finalAnswer);
            expect(result.stopReason).toBe("finished");
            expect(result.invalidActions).toBe(recorded.steps.filter((s) => s.observation.startsWith("Invalid action")).length);
            expect(model.remaining).toBe(0);
            // The prompts are the history as rendered so far, ending where the model writes.
            expect(model.prompts[0]).toBe(`${header}\nQuestion: ${row.question.trim()}\nThought:`);
            expect(model.prompts[1]!.endsWith(`Thought: ${recorded.steps[0]!.thought}\nAction:`)).toBe(true);
        }
    });

    /** What each sub-agent writes for a recorded step, as division of labor trains it. */
    function groupReplies(steps: readonly EpisodeStep[], finishBy: FinishBy) {
        const plan: string[] = [];
        const tool: string[] = [];
        const reflect: string[] = [];
        let afterFinish = false;
        for (const step of steps) {
            const key = step.action.toLowerCase();
            if (key === "reflect" && afterFinish) {
                reflect.push(` ${step.thought}`, ` Reflect[${step.argument}]`);
            } else if (key === "reflect") {
                plan.push(` ${step.thought}`, ` Reflect[${step.argument}]`);
            } else if (key === "finish" && finishBy === "plan") {
                plan.push(` ${step.thought}`, ` Finish[${step.argument}]`);
            } else {
                plan.push(` ${step.thought}`, ` ${step.action}`);
                tool.push(`${step.argument}]`);
            }
            afterFinish = key === "finish";
        }
        return { plan, tool, reflect };
    }

    async function replayGroup(question: string, steps: readonly EpisodeStep[], finishBy: FinishBy) {
        const replies = groupReplies(steps, finishBy);
        const models = {
            plan: new RecordedModel("plan", replies.plan),
            tool: new RecordedModel("tool", replies.tool),
            reflect: new RecordedModel("reflect", replies.reflect)
        };
        const policy = new GroupPolicy({ plan: models.plan.agent(), tool: models.tool.agent(), reflect: models.reflect.agent() }, sampling, { finishBy });
        const result = await runEpisode({ ...episodeOptions, question, policy, tools: recordedTools(steps), session: new ToolSession() });
        return { models, result };
    }

    it("group planning replays every kept trajectory; each sub-agent is asked exactly its training samples' inputs", async () => {
        for (const finishBy of ["tool", "plan"] as const) {
            for (const row of rows.filter((r) => r.correct)) {
                const recorded = await parseScratchpad(row.prompt);
                const { models, result } = await replayGroup(row.question, recorded.steps, finishBy);
                expect(result.steps.map((s) => `${s.action}[${s.argument}]`)).toEqual(recorded.steps.map((s) => `${s.action}[${s.argument}]`));
                expect(result.finalAnswer).toBe(recorded.finalAnswer);
                for (const model of Object.values(models))
                    expect(model.remaining, model.name).toBe(0);
                // Training and inference see the same text: every sample is a (prompt, reply) the agent saw.
                for (const sample of divideTrajectory(header, row.question, result.steps, { finishBy })) {
                    const model = models[sample.agent];
                    const at = model.prompts.indexOf(sample.input);
                    expect(at, `${sample.agent} ${sample.kind} of "${row.question}"`).toBeGreaterThanOrEqual(0);
                }
                // Finish's answer comes from the tool agent only with finish_by tool.
                const finishPrompts = models.tool.prompts.filter((p) => p.endsWith("Action: Finish["));
                expect(finishPrompts).toHaveLength(finishBy === "tool" ? 1 : 0);
            }
        }
    });

    it("group planning's reflect branch: Reflect[wrong] hands back to the plan agent, whose next Finish ends the episode", async () => {
        // Row 2: the 13B agents answered "New Delhi" (gold "Delhi") and reflected right. Here the
        // reflect agent says wrong (text written for this test), and the plan agent answers again.
        const row = rows[1]!;
        const recorded = await parseScratchpad(row.prompt);
        const solved = recorded.steps.slice(0, -1);
        const steps: EpisodeStep[] = [
            ...solved,
            { thought: "The head office of The Oberoi Group is in Delhi, not New Delhi as I answered.", action: "Reflect", argument: "wrong", observation: "" },
            { thought: "The Oberoi Group has its head office in Delhi.", action: "Finish", argument: "Delhi", observation: "" }
        ];
        const { models, result } = await replayGroup(row.question, steps, "tool");
        expect(result.stopReason).toBe("finished");
        expect(result.finalAnswer).toBe("Delhi");
        expect(result.steps.map((s) => `${s.action}[${s.argument}]`).slice(-3)).toEqual(["Finish[New Delhi]", "Reflect[wrong]", "Finish[Delhi]"]);
        expect(result.steps.at(-2)!.observation).toBe("Then solve the question again and give the new answer with Finish.");
        // The reflect agent was asked twice (thought, verdict), right after the first Finish only.
        expect(models.reflect.prompts).toHaveLength(2);
        expect(models.reflect.prompts[0]!.endsWith(`Action: Finish[New Delhi]\nObservation: Answer "New Delhi" recorded. Check it: Reflect[right] if it is right, Reflect[wrong] if not.\nThought:`)).toBe(true);
        // After Reflect[wrong], the plan agent thinks again and the tool agent writes the new answer.
        expect(models.plan.prompts.at(-2)!.endsWith("Reflect[wrong]\nObservation: Then solve the question again and give the new answer with Finish.\nThought:")).toBe(true);
        expect(models.tool.prompts.at(-1)!.endsWith("Thought: The Oberoi Group has its head office in Delhi.\nAction: Finish[")).toBe(true);
        for (const model of Object.values(models))
            expect(model.remaining).toBe(0);
    });
});
