import type { ToolSession } from "../tools/types.js";
import { renderHistory, oneLine, type EpisodeStep } from "./react-format.js";

/**
 * One ReAct episode with AutoAct's Finish/Reflect protocol:
 * - the first Finish records the answer and asks for a reflection;
 * - Reflect[right] ends the episode with that answer; Reflect[wrong] asks to solve again,
 *   and the next Finish ends the episode;
 * - Reflect that does not directly follow Finish, Finish without an answer, or an unknown
 *   action, is an invalid action: it gets an observation saying so and the episode goes on,
 *   up to `maxInvalidInRow` of them in a row;
 * - a step whose prompt no longer fits the context ends the episode before it is taken.
 * The policy (one meta-agent, or the three sub-agents) decides the steps; this file owns
 * the rules, so synthesis and evaluation cannot drift apart.
 */

export type StopReason = "finished" | "step_limit" | "context_limit" | "invalid";
export type EpisodePhase = "solve" | "reflect";

export interface PolicyStep {
    thought: string;
    /** Action name as written by the model ("" when none could be read). */
    action: string;
    argument: string;
    promptTokens: number;
    generatedTokens: number;
    /** The largest prompt (in tokens) this step used: checked against the context limit. */
    maxPromptTokens: number;
    /** A generation of this step found no room left in the context: the step is cut short and not taken. */
    contextFull?: boolean;
}

export interface StepPolicy {
    /** Decides the next step from the history text (header, question, steps so far). */
    next(history: string, phase: EpisodePhase): Promise<PolicyStep>;
}

export interface ToolRunner {
    /** Canonical name of an available tool, or null when the name matches none. */
    resolve(name: string): string | null;
    run(name: string, argument: string, session: ToolSession): Promise<string>;
    /** Names for the "invalid action" observation. */
    readonly names: readonly string[];
}

export interface EpisodeOptions {
    header: string;
    question: string;
    policy: StepPolicy;
    tools: ToolRunner;
    session: ToolSession;
    maxSteps: number;
    /** Stop when a prompt comes within `reserveTokens` of this many tokens. */
    maxContext: number;
    /** Defaults to 256: room for the next step's generation. */
    reserveTokens?: number;
    /** Consecutive invalid actions (unreadable, unknown, misplaced, an empty answer) before giving up. Defaults to 3. */
    maxInvalidInRow?: number;
    /** Whether a Reflect follows the first Finish. Defaults to true; false (the -reflection ablation) ends at the first Finish. */
    reflection?: boolean;
}

export interface EpisodeResult {
    steps: (EpisodeStep & { index: number })[];
    finalAnswer: string | null;
    stopReason: StopReason;
    promptTokens: number;
    generatedTokens: number;
    invalidActions: number;
    timeMs: number;
}

export const observations = {
    reflect: (answer: string) => `Answer "${answer}" recorded. Check it: Reflect[right] if it is right, Reflect[wrong] if not.`,
    retry: "Then solve the question again and give the new answer with Finish.",
    finished: "Episode finished.",
    reflectWithoutFinish: "Invalid action: Reflect must directly follow Finish.",
    badVerdict: "Invalid action: Reflect takes right or wrong.",
    emptyAnswer: "Invalid action: Finish takes the answer, as Finish[answer].",
    unreadable: "Invalid action: write one action as Name[argument].",
    unknown: (name: string, names: readonly string[], reflection = true) =>
        `Invalid action: ${name} is not available. Use one of: ${[...names, "Finish", ...(reflection ? ["Reflect"] : [])].join(", ")}.`
};

export async function runEpisode(options: EpisodeOptions): Promise<EpisodeResult> {
    const { header, question, policy, tools, session, maxSteps, maxContext } = options;
    const reserve = options.reserveTokens ?? 256;
    const maxInvalidInRow = options.maxInvalidInRow ?? 3;
    const started = performance.now();
    const steps: EpisodeResult["steps"] = [];
    let pendingAnswer: string | null = null;
    let retrying = false;
    let phase: EpisodePhase = "solve";
    let promptTokens = 0;
    let generatedTokens = 0;
    let invalidActions = 0;
    let invalidInRow = 0;

    const finish = (stopReason: StopReason, finalAnswer: string | null): EpisodeResult => ({
        steps, finalAnswer, stopReason, promptTokens, generatedTokens, invalidActions,
        timeMs: performance.now() - started
    });

    while (steps.length < maxSteps) {
        const history = renderHistory(header, question, steps);
        const step = await policy.next(history, phase);
        promptTokens += step.promptTokens;
        generatedTokens += step.generatedTokens;
        if (step.contextFull === true)
            return finish("context_limit", pendingAnswer);
        const written = step.action.trim();
        const key = written.toLowerCase();
        const tool = key === "" || key === "finish" || key === "reflect" ? null : tools.resolve(written);
        // recorded as the protocol and the tools spell it: the history and the training samples read it so
        const action = key === "finish" ? "Finish" : key === "reflect" ? "Reflect" : tool ?? written;
        const argument = oneLine(step.argument);
        // Reflect answers the Finish right before it, and only one the protocol took (not Finish[])
        const afterFinish = steps.at(-1)?.action === "Finish" && !steps.at(-1)!.observation.startsWith("Invalid action");
        const record = (observation: string) => {
            steps.push({ index: steps.length, thought: oneLine(step.thought), action, argument, observation });
        };
        const invalid = (observation: string) => {
            invalidActions++;
            record(observation);
            return ++invalidInRow >= maxInvalidInRow;
        };

        if (action === "") {
            if (invalid(observations.unreadable))
                return finish("invalid", pendingAnswer);
        } else if (action === "Finish" && argument === "") {
            if (invalid(observations.emptyAnswer))
                return finish("invalid", pendingAnswer);
        } else if (action === "Finish") {
            invalidInRow = 0;
            if (retrying || pendingAnswer != null || options.reflection === false) {
                record(observations.finished);
                return finish("finished", argument);
            }
            pendingAnswer = argument;
            record(observations.reflect(argument));
            phase = "reflect";
        } else if (action === "Reflect") {
            const verdict = argument.toLowerCase().replace(/[^a-z]/g, "");
            if (!afterFinish || pendingAnswer == null) {
                if (invalid(observations.reflectWithoutFinish))
                    return finish("invalid", pendingAnswer);
            } else if (verdict === "right") {
                record(observations.finished);
                return finish("finished", pendingAnswer);
            } else if (verdict === "wrong") {
                invalidInRow = 0;
                record(observations.retry);
                retrying = true;
                phase = "solve";
            } else if (invalid(observations.badVerdict)) {
                return finish("invalid", pendingAnswer);
            }
        } else if (tool == null) {
            if (invalid(observations.unknown(action, tools.names, options.reflection !== false)))
                return finish("invalid", pendingAnswer);
        } else {
            invalidInRow = 0;
            record(await tools.run(tool, argument, session));
        }
        // A reflection is only asked for right after Finish.
        if (phase === "reflect" && steps.at(-1)?.action !== "Finish")
            phase = "solve";
        if (step.maxPromptTokens + reserve > maxContext)
            return finish("context_limit", pendingAnswer);
    }
    return finish("step_limit", pendingAnswer);
}
