import { normalizeAnswer } from "../metrics/index.js";
import { toolNameKey } from "../tools/parse.js";

/**
 * The meta-agent's two planning jobs before synthesis: writing new tasks from a few
 * examples (self-instruct) and choosing tools from the library. Prompt builders and
 * parsers are pure functions; the stages run them through the engine.
 */

export interface TaskPair {
    question: string;
    answer: string;
}

export interface Passage {
    title: string;
    text: string;
}

export function selfInstructPrompt(options: {
    description: string;
    examples: TaskPair[];
    count: number;
    passages?: Passage[];
}): string {
    const lines = [
        `Task: ${options.description.trim()}`,
        ""
    ];
    if (options.passages != null && options.passages.length > 0) {
        lines.push("Passages:");
        for (const passage of options.passages)
            lines.push(`[${passage.title}] ${passage.text.trim()}`);
        lines.push("");
        lines.push(`Write ${options.count} new examples of this task whose answers can be found in the passages above, best by combining facts from more than one passage.`);
    } else {
        lines.push(`Write ${options.count} new examples of this task, different from the ones below.`);
    }
    lines.push("Each example is a line starting with \"Question:\" followed by a line starting with \"Answer:\". Answers are short.");
    lines.push("");
    for (const example of options.examples)
        lines.push(`Question: ${example.question.trim()}`, `Answer: ${example.answer.trim()}`, "");
    return lines.join("\n");
}

const EXAMPLE = /Question\s*:\s*([\s\S]+?)\s*\n\s*Answer\s*:\s*([^\n]+)/gi;

/** Reads `Question: ... / Answer: ...` pairs from generated text; questions may span lines. */
export function parseTaskPairs(text: string): TaskPair[] {
    const pairs: TaskPair[] = [];
    for (const match of text.matchAll(EXAMPLE)) {
        const question = match[1]!.replace(/\s+\n/g, "\n").trim();
        const answer = match[2]!.trim().replace(/^["']|["']$/g, "").trim();
        if (question.length >= 8 && answer.length > 0 && !/question\s*:/i.test(question))
            pairs.push({ question, answer });
    }
    return pairs;
}

/**
 * Keeps a pair only when its normalized question is new and, for free-text tasks, its
 * normalized answer is new too (AutoAct keeps only new answers; yes/no may repeat) and not
 * longer than `maxAnswerChars` (0 = no limit).
 */
export class TaskDeduplicator {
    private readonly questions = new Set<string>();
    private readonly answers = new Set<string>();

    constructor(private readonly options: { uniqueAnswers: boolean; maxAnswerChars: number }) {}

    /** Marks a pair as seen without checking it (seeds, resumed batches). */
    remember(pair: TaskPair): void {
        this.questions.add(normalizeAnswer(pair.question));
        this.answers.add(normalizeAnswer(pair.answer));
    }

    accept(pair: TaskPair): boolean {
        const question = normalizeAnswer(pair.question);
        const answer = normalizeAnswer(pair.answer);
        if (question === "" || answer === "" || this.questions.has(question))
            return false;
        if (this.options.maxAnswerChars > 0 && pair.answer.length > this.options.maxAnswerChars)
            return false;
        if (this.options.uniqueAnswers && this.answers.has(answer) && answer !== "yes" && answer !== "no")
            return false;
        this.remember(pair);
        return true;
    }
}

export interface ToolChoiceDoc {
    name: string;
    description: string;
}

export function toolSelectionPrompt(options: { name: string; description: string; tools: ToolChoiceDoc[]; count: number }): string {
    const lines = [
        `Task: ${options.name}. ${options.description.trim()}`,
        "",
        "Available tools:"
    ];
    options.tools.forEach((tool, i) => lines.push(`${i + 1}. ${tool.name}: ${tool.description}`));
    lines.push("");
    lines.push(`Choose the ${options.count} tools that help most with this task. Write one tool name per line, then a line starting with "Reason:" that says why.`);
    return lines.join("\n");
}

export interface ToolChoice {
    name: string;
    rank: number;
    /** True when this tool came from the fallback list rather than the model's answer. */
    fallback: boolean;
}

export interface ParsedToolSelection {
    chosen: ToolChoice[];
    reason: string;
}

/**
 * Matches tool names in the meta-agent's answer back to the library (case, spaces and
 * punctuation ignored), in order of appearance. Missing picks are filled from `fallback`,
 * in its order, and marked as such.
 */
export function parseToolSelection(text: string, library: string[], count: number, fallback: string[]): ParsedToolSelection {
    const byKey = new Map(library.map((name) => [toolNameKey(name), name] as const));
    const found: string[] = [];
    const reasonMatch = /reason\s*:\s*([^\n]+)/i.exec(text);
    const body = reasonMatch == null ? text : text.slice(0, reasonMatch.index);
    for (const word of body.split(/[^A-Za-z0-9_]+/)) {
        const name = byKey.get(toolNameKey(word));
        if (name != null && !found.includes(name))
            found.push(name);
        if (found.length === count)
            break;
    }
    const chosen: ToolChoice[] = found.map((name, i) => ({ name, rank: i + 1, fallback: false }));
    for (const name of fallback) {
        if (chosen.length >= count)
            break;
        if (!chosen.some((c) => c.name === name) && byKey.has(toolNameKey(name)))
            chosen.push({ name: byKey.get(toolNameKey(name))!, rank: chosen.length + 1, fallback: true });
    }
    return { chosen, reason: reasonMatch?.[1]?.trim() ?? "" };
}
