/**
 * The text of a ReAct episode. Synthesis, division of labor and group planning all render
 * prompts through these functions, so every sub-agent is trained on exactly the text it is
 * later asked with.
 *
 *   <task header>
 *   Question: ...
 *   Thought: ...
 *   Action: Search[...]
 *   Observation: ...
 *   Thought:
 */

export interface ToolDoc {
    name: string;
    signature: string;
    description: string;
    example: string;
}

export interface TaskHeaderOptions {
    /** The task's description from the pipeline config. */
    description: string;
    /** The selected tools (Finish and Reflect are added by the header itself). */
    tools: ToolDoc[];
    /** "multiple-choice" tasks are told to finish with the option letter. */
    kind: "qa" | "multiple-choice";
    /** Whether Reflect is one of the actions (AutoAct's protocol); false for plain ReAct. Defaults to true. */
    reflection?: boolean;
}

export interface EpisodeStep {
    thought: string;
    action: string;
    argument: string;
    observation: string;
}

/** Role, tools and protocol: the same header starts every prompt of every agent. */
export function renderTaskHeader({ description, tools, kind, reflection = true }: TaskHeaderOptions): string {
    const lines = [
        "You are an agent that solves a task step by step, interleaving Thought, Action and Observation.",
        `Task: ${description.trim()}`,
        "Thought reasons about the current situation. Action is one of:"
    ];
    tools.forEach((tool, i) => {
        lines.push(`(${i + 1}) ${tool.signature}: ${tool.description} Example: ${tool.example}`);
    });
    const answer = kind === "multiple-choice" ? "the letter of the chosen option" : "a short answer";
    lines.push(`(${tools.length + 1}) Finish[answer]: gives ${answer} and ends the attempt.`);
    if (reflection)
        lines.push(`(${tools.length + 2}) Reflect[right] or Reflect[wrong]: judges the answer just given; it must directly follow Finish. After Reflect[wrong], solve again and Finish once more.`);
    lines.push("Write one Thought line, then one Action line.");
    return lines.join("\n") + "\n";
}

/**
 * Characters of a prompt up to its first step (the task header and the question, all its lines:
 * a multiple-choice question's options too), or 0 when it has no question followed by a step:
 * what a prompt cut to fit a training context keeps, so that a sample loses its oldest steps,
 * not the task it is about.
 */
export function taskAndQuestionLength(prompt: string): number {
    const question = /(^|\n)Question:/.exec(prompt);
    const firstStep = question == null ? -1 : prompt.indexOf("\nThought:", question.index + question[0].length);
    return firstStep < 0 ? 0 : firstStep + 1;
}

/** Header, question and the finished steps (each with its observation). */
export function renderHistory(header: string, question: string, steps: readonly EpisodeStep[]): string {
    let text = `${header}\nQuestion: ${question.trim()}\n`;
    for (const step of steps)
        text += `Thought: ${oneLine(step.thought)}\nAction: ${renderAction(step.action, step.argument)}\nObservation: ${oneLine(step.observation)}\n`;
    return text;
}

/** Prompt for the next thought. */
export function thoughtPrompt(history: string): string {
    return `${history}Thought:`;
}

/** Prompt for the next action, after the thought. */
export function actionPrompt(history: string, thought: string): string {
    return `${history}Thought: ${oneLine(thought)}\nAction:`;
}

/** Prompt for a tool's argument, after the plan agent chose the action name. */
export function argumentPrompt(history: string, thought: string, action: string): string {
    return `${history}Thought: ${oneLine(thought)}\nAction: ${action}[`;
}

export function renderAction(action: string, argument: string): string {
    return `${action}[${oneLine(argument)}]`;
}

/** Steps are rendered one line each: newlines in model output or observations would break the format. */
export function oneLine(text: string): string {
    return text.replace(/\s*\n+\s*/g, " ").trim();
}
