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

/** ReAct exemplars in the episode's own text, to follow the task header. */
export function reactExemplars(exemplars: readonly Exemplar[]): string {
    if (exemplars.length === 0)
        return "";
    const blocks = exemplars.map((e) => renderHistory("", e.question, e.steps != null && e.steps.length > 0 ? e.steps : protocolSteps(e.answer)).trimStart());
    return `Solved examples:\n${blocks.join("\n")}\nNow the question to solve.\n`;
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
        { thought: `${answer} answers what the question asks.`, action: "Reflect", argument: "right", observation: "Episode finished." }
    ];
}
