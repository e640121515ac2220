import { observations } from "./episode.js";
import { oneLine, renderHistory, type EpisodeStep } from "./react-format.js";

/**
 * Few-shot exemplars written from the pipeline's own seed examples (never copied from the
 * original's prompt files). A seed the run solved right comes with its real trajectory; a
 * seed without one shows the protocol only: Finish with the seed's answer, then Reflect.
 */
export interface Exemplar {
    question: string;
    answer: string;
    /** A right trajectory of this question from the run (filtered.arrow), when there is one. */
    steps?: readonly EpisodeStep[];
}

/**
 * ReAct exemplars in the episode's own text, to follow the task header; with `reflection`
 * false (plain ReAct), without Reflect: the work, then Finish with the final answer.
 */
export function reactExemplars(exemplars: readonly Exemplar[], { reflection = true }: { reflection?: boolean } = {}): string {
    if (exemplars.length === 0)
        return "";
    const blocks = exemplars.map((e) => {
        const steps = e.steps != null && e.steps.length > 0 ? e.steps : protocolSteps(e.answer);
        return renderHistory("", e.question, reflection ? steps : withoutReflection(steps)).trimStart();
    });
    return `Solved examples:\n${blocks.join("\n")}\nNow the question to solve.\n`;
}

/** A trajectory as plain ReAct would have it: its Finish and Reflect steps gone but the last Finish, which ends it. */
function withoutReflection(steps: readonly EpisodeStep[]): EpisodeStep[] {
    const last = steps.filter((s) => s.action === "Finish").at(-1);
    const work = steps.filter((s) => s.action !== "Finish" && s.action !== "Reflect");
    return last == null ? work : [...work, { ...last, observation: observations.finished }];
}

/** Chain-of-thought exemplars: the question, the reasoning (a trajectory's thoughts) and the answer line. */
export function chainOfThoughtExemplars(exemplars: readonly Exemplar[]): string {
    return exemplars.map((e) => {
        const reasoning = (e.steps ?? []).filter((s) => s.action.toLowerCase() !== "reflect").map((s) => oneLine(s.thought)).filter((t) => t !== "");
        return [`Question: ${e.question.trim()}`, ...(reasoning.length > 0 ? [reasoning.join(" ")] : []), `Answer: ${e.answer.trim()}`, ""].join("\n");
    }).join("\n");
}

function protocolSteps(answer: string): EpisodeStep[] {
    return [
        { thought: "I know the answer to this question.", action: "Finish", argument: answer, observation: observations.reflect(answer) },
        { thought: `${answer} answers what the question asks.`, action: "Reflect", argument: "right", observation: observations.finished }
    ];
}
