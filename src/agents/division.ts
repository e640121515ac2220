import { actionPrompt, argumentPrompt, renderAction, renderHistory, thoughtPrompt, type EpisodeStep } from "./react-format.js";
import { agentNames, type AgentName } from "../data/schemas.js";

export type SubAgentName = AgentName;
/** Who writes Finish's answer: the tool agent (the paper's division) or the plan agent. */
export type FinishBy = "tool" | "plan";
/** The samples table's agent names (src/data/schemas.ts): one list for tables, training and exports. */
export const subAgentNames: readonly SubAgentName[] = agentNames;

export interface DividedSample {
    agent: SubAgentName;
    step: number;
    /** thought | action | argument | reflection | verdict */
    kind: "thought" | "action" | "argument" | "reflection" | "verdict";
    input: string;
    output: string;
}

/**
 * Division of labor: cuts one kept trajectory into the samples of the three sub-agents,
 * with the very prompts group planning (policies.ts) will ask them with:
 * - plan: history -> thought; history + thought -> action name;
 * - tool: history + thought + `Name[` -> the argument and its closing bracket;
 * - reflect: at a Reflect step, history -> thought; history + thought -> Reflect[verdict].
 * Finish's answer is a tool argument like any other with `finishBy` "tool" (the paper's
 * division, the default); with "plan" the plan agent writes `Finish[answer]` whole.
 */
export function divideTrajectory(
    header: string, question: string, steps: readonly EpisodeStep[], options: { finishBy?: FinishBy } = {}
): DividedSample[] {
    const finishBy = options.finishBy ?? "tool";
    const samples: DividedSample[] = [];
    steps.forEach((step, index) => {
        const history = renderHistory(header, question, steps.slice(0, index));
        const key = step.action.toLowerCase();
        // Steps the protocol rejected teach nothing worth copying, nor does a step without a
        // thought (it would teach the plan agent to stop at once; the original skips them too).
        if (step.action === "" || step.thought === "" || step.observation.startsWith("Invalid action"))
            return;
        if (key === "reflect") {
            samples.push({ agent: "reflect", step: index, kind: "reflection", input: thoughtPrompt(history), output: step.thought });
            samples.push({ agent: "reflect", step: index, kind: "verdict", input: actionPrompt(history, step.thought), output: renderAction("Reflect", step.argument) });
            return;
        }
        samples.push({ agent: "plan", step: index, kind: "thought", input: thoughtPrompt(history), output: step.thought });
        if (key === "finish" && finishBy === "plan") {
            samples.push({ agent: "plan", step: index, kind: "action", input: actionPrompt(history, step.thought), output: renderAction("Finish", step.argument) });
            return;
        }
        const name = key === "finish" ? "Finish" : step.action;
        samples.push({ agent: "plan", step: index, kind: "action", input: actionPrompt(history, step.thought), output: name });
        if (step.argument !== "") // an empty argument teaches the tool agent nothing but to close the bracket
            samples.push({ agent: "tool", step: index, kind: "argument", input: argumentPrompt(history, step.thought, name), output: `${step.argument}]` });
    });
    return samples;
}
