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

// "Answer: x", "Final answer: x", "the answer is x", "So the answer is: x"
const ANSWER = /\banswer\s*(?::|is\b\s*:?)\s*/gi;

/**
 * The text after the last "Answer:" (or "the answer is"), else the last non-empty line; null
 * for empty output, and for output cut by the token limit before any answer (its last line is
 * reasoning, not an answer). Markdown emphasis and a sentence's own "The answer is" are taken
 * off, and a yes/no answer loses its explanation ("yes, both are in China" -> "yes").
 */
export function parseChainOfThoughtAnswer(text: string, options: { cut?: boolean } = {}): string | null {
    const unmarked = (line: string) => line.replace(/^[*_`\s]+|[*_`\s]+$/g, "");
    const answers = [...text.matchAll(ANSWER)].map((m) => unmarked(text.slice(m.index + m[0].length).split("\n")[0]!)).filter((a) => a !== "");
    let answer = answers.at(-1);
    if (answer == null) {
        if (options.cut === true)
            return null;
        answer = text.split("\n").map((line) => line.trim()).filter((line) => line !== "").at(-1);
        // an answer label with nothing after it is no answer
        if (answer == null || /^[*_#\s]*(?:final\s+)?answer\s*[*_]*\s*:?[*_\s]*$/i.test(answer))
            return null;
    }
    answer = unmarked(answer);
    // "Final Answer: The answer is Paris." -> "Paris"
    for (let inner = answer.match(/^(?:so\s+|thus\s+|therefore\s+)?the\s+(?:final\s+)?answer\s*(?::|is\b\s*:?)\s*(.+)$/i); inner != null; inner = answer.match(/^the\s+answer\s+is\s+(.+)$/i))
        answer = inner[1]!.trim();
    const yesNo = /^(yes|no)\b[,.;:!]/i.exec(answer);
    return yesNo != null ? yesNo[1]! : answer;
}
