import { actionPrompt, argumentPrompt, renderAction, renderHistory, thoughtPrompt, type EpisodeStep } from "./react-format.js";

export type SubAgentName = "plan" | "tool" | "reflect";
export const subAgentNames: readonly SubAgentName[] = ["plan", "tool", "reflect"];

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
 * - plan: history -> thought; history + thought -> action name (Finish with its answer);
 * - tool: history + thought + `Name[` -> the argument and its closing bracket;
 * - reflect: at a Reflect step, history -> thought; history + thought -> Reflect[verdict].
 */
export function divideTrajectory(header: string, question: string, steps: readonly EpisodeStep[]): DividedSample[] {
    const samples: DividedSample[] = [];
    steps.forEach((step, index) => {
        const history = renderHistory(header, question, steps.slice(0, index));
        const key = step.action.toLowerCase();
        // Steps the protocol rejected teach nothing worth copying.
        if (step.action === "" || step.observation.startsWith("Invalid action"))
            return;
        if (key === "reflect") {
            samples.push({ agent: "reflect", step: index, kind: "reflection", input: thoughtPrompt(history), output: step.thought });
            samples.push({ agent: "reflect", step: index, kind: "verdict", input: actionPrompt(history, step.thought), output: renderAction("Reflect", step.argument) });
            return;
        }
        samples.push({ agent: "plan", step: index, kind: "thought", input: thoughtPrompt(history), output: step.thought });
        if (key === "finish") {
            samples.push({ agent: "plan", step: index, kind: "action", input: actionPrompt(history, step.thought), output: renderAction("Finish", step.argument) });
            return;
        }
        samples.push({ agent: "plan", step: index, kind: "action", input: actionPrompt(history, step.thought), output: step.action });
        samples.push({ agent: "tool", step: index, kind: "argument", input: argumentPrompt(history, step.thought, step.action), output: `${step.argument}]` });
    });
    return samples;
}
