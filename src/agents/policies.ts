import { closeArgument, parseAction } from "../tools/parse.js";
import type { AgentModel, Sampling } from "./agent-model.js";
import type { EpisodePhase, PolicyStep, StepPolicy } from "./episode.js";
import { actionPrompt, argumentPrompt, thoughtPrompt } from "./react-format.js";
import type { GenerationResult } from "../llm/engine.js";
import type { FinishBy } from "./division.js";

/** Sampling settings shared by every generation of an episode; each call gets its own seed. */
export interface EpisodeSampling extends Omit<Sampling, "stop" | "seed"> {
    /** Base seed of the episode: calls are seeded from it, so a rerun repeats the episode. */
    seed: number;
}

class CallSeeds {
    private calls = 0;
    constructor(private readonly base: number) {}
    next(): number {
        // Distinct, repeatable seeds per call of an episode.
        return (Math.imul(this.base, 2654435761) + 97 * ++this.calls) >>> 0;
    }
}

function tally(results: GenerationResult[]): Pick<PolicyStep, "promptTokens" | "generatedTokens" | "maxPromptTokens" | "contextFull"> {
    return {
        promptTokens: results.reduce((sum, r) => sum + r.promptTokens, 0),
        generatedTokens: results.reduce((sum, r) => sum + r.generatedTokens, 0),
        maxPromptTokens: Math.max(0, ...results.map((r) => r.promptTokens + r.generatedTokens)),
        contextFull: results.some((r) => r.stopReason === "contextFull")
    };
}

/** A step cut short where a generation ran out of context: the episode ends without taking it. */
function cutShort(results: GenerationResult[]): PolicyStep | null {
    return results.at(-1)?.stopReason === "contextFull" ? { thought: "", action: "", argument: "", ...tally(results) } : null;
}

const LABEL = /^(?:Thought|Action|Observation)\s*\d*\s*:\s*/i;
const NEXT_LABEL = /\s*\b(?:Thought|Action|Observation)\s*\d*\s*:[\s\S]*$/;

/**
 * The thought as the history keeps it: a chat model may repeat the `Thought:` label, or run on
 * into `Action: ...` on the same line; both are cut, as the original's step formatting does.
 */
export function cleanThought(text: string): string {
    return text.trim().replace(LABEL, "").replace(NEXT_LABEL, "").trim();
}

const lineStop = ["\n"];

/**
 * Zero-shot ReAct by the meta-agent alone (trajectory synthesis, and the "react" baseline):
 * one generation for the thought, one for the whole action line.
 */
export class MetaAgentPolicy implements StepPolicy {
    private readonly seeds: CallSeeds;

    constructor(private readonly agent: AgentModel, private readonly sampling: EpisodeSampling) {
        this.seeds = new CallSeeds(sampling.seed);
    }

    async next(history: string): Promise<PolicyStep> {
        const thought = await this.agent.complete(thoughtPrompt(history), this.callSampling());
        let short = cutShort([thought]);
        if (short != null)
            return short;
        const thoughtText = cleanThought(thought.text);
        const action = await this.agent.complete(actionPrompt(history, thoughtText), this.callSampling());
        if ((short = cutShort([thought, action])) != null)
            return short;
        const parsed = parseAction(action.text);
        return {
            thought: thoughtText,
            action: parsed?.name ?? "",
            argument: parsed?.argument ?? "",
            ...tally([thought, action])
        };
    }

    private callSampling(): Sampling {
        return { ...this.sampling, stop: lineStop, seed: this.seeds.next() };
    }
}

export interface SubAgents {
    plan: AgentModel;
    tool: AgentModel;
    reflect: AgentModel;
}

/**
 * Group planning: the plan agent writes the thought and the action name; the tool agent
 * writes a tool's argument, and Finish's answer when `finishBy` is "tool" (the paper's
 * division, the default; "plan" lets the plan agent write Finish[answer] whole); right after
 * a Finish, the reflect agent writes the thought and the Reflect action.
 */
export class GroupPolicy implements StepPolicy {
    private readonly seeds: CallSeeds;
    private readonly finishBy: FinishBy;

    constructor(private readonly agents: SubAgents, private readonly sampling: EpisodeSampling, options: { finishBy?: FinishBy } = {}) {
        this.seeds = new CallSeeds(sampling.seed);
        this.finishBy = options.finishBy ?? "tool";
    }

    async next(history: string, phase: EpisodePhase): Promise<PolicyStep> {
        const lead = phase === "reflect" ? this.agents.reflect : this.agents.plan;
        const thought = await lead.complete(thoughtPrompt(history), this.callSampling());
        let short = cutShort([thought]);
        if (short != null)
            return short;
        const thoughtText = cleanThought(thought.text);
        const action = await lead.complete(actionPrompt(history, thoughtText), this.callSampling());
        if ((short = cutShort([thought, action])) != null)
            return short;
        const parsed = parseAction(action.text);
        const name = parsed?.name ?? "";
        const key = name.toLowerCase();
        const planFinishes = key === "finish" && (this.finishBy === "plan" || phase === "reflect");
        if (name === "" || key === "reflect" || planFinishes)
            return { thought: thoughtText, action: name, argument: parsed?.argument ?? "", ...tally([thought, action]) };

        const argument = await this.agents.tool.complete(argumentPrompt(history, thoughtText, key === "finish" ? "Finish" : name), this.callSampling());
        if ((short = cutShort([thought, action, argument])) != null)
            return short;
        return {
            thought: thoughtText,
            action: name,
            argument: closeArgument(argument.text, name),
            ...tally([thought, action, argument])
        };
    }

    private callSampling(): Sampling {
        return { ...this.sampling, stop: lineStop, seed: this.seeds.next() };
    }
}
