/**
 * The chain-of-thought baseline: the meta-agent answers without tools, reasoning first and
 * giving its answer on a last line "Answer: ...".
 */
export function chainOfThoughtPrompt(options: { description: string; question: string; kind: "qa" | "multiple-choice"; exemplars?: string }): string {
    const answer = options.kind === "multiple-choice" ? "the letter of the right option" : "a short answer";
    return [
        `Task: ${options.description.trim()}`,
        ...(options.exemplars ? ["Solved examples:", options.exemplars.trimEnd(), ""] : []),
        `Question: ${options.question.trim()}`,
        `Think step by step, then give ${answer} on a last line that starts with "Answer:".`,
        ""
    ].join("\n");
}

/** The text after the last "Answer:", else the last non-empty line; null for empty output. */
export function parseChainOfThoughtAnswer(text: string): string | null {
    const matches = [...text.matchAll(/answer\s*(?:is)?\s*:\s*([^\n]+)/gi)];
    const last = matches.at(-1)?.[1]?.trim();
    if (last != null && last !== "")
        return last;
    const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
    return lines.at(-1) ?? null;
}
