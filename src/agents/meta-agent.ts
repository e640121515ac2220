import { textKey } from "../metrics/index.js";
import { toolNameKey } from "../tools/parse.js";

/**
 * The meta-agent's two planning jobs before synthesis: writing new tasks from a few
 * examples (self-instruct) and choosing tools from the library. Prompt builders and
 * parsers are pure functions; the stages run them through the engine.
 */

export interface TaskPair {
    question: string;
    answer: string;
    /** The image a question refers to, as caption and OCR text (ScienceQA); absent without one. */
    image?: { caption: string; ocr: string };
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
    const withImages = options.examples.some((example) => example.image != null);
    if (withImages)
        lines.push("When a question refers to an image, describe the image on a line starting with \"Caption:\" and the text in it on a line starting with \"OCR:\", before the answer.");
    lines.push("");
    for (const example of options.examples) {
        lines.push(`Question: ${example.question.trim()}`);
        if (example.image != null)
            lines.push(`Caption: ${oneLineText(example.image.caption)}`, `OCR: ${oneLineText(example.image.ocr)}`);
        lines.push(`Answer: ${example.answer.trim()}`, "");
    }
    return lines.join("\n");
}

// Labels as instruct models write them: "Question:", "**Question:**", "Question 1:", "Q1.", "### Question".
function oneLineText(text: string): string {
    return text.replace(/\s+/g, " ").trim() || "none";
}

const CAPTION_LABEL = /^(?:image\s+)?caption\s*:\s*/i;
const OCR_LABEL = /^(?:ocr|text in the image|image text)\s*:\s*/i;

// "Q:" and "A:" only with a colon: "A." and "A)" start options; "A:" answers only after "Q:"
// (after "Question:" it is an option, "A: wood"). A heading "### Question 1" alone is a label;
// "Question-Answer Pairs" is not.
const QUESTION_LABEL = /^(?:question\s*\d*\s*(?:[:.)]|-(?=\s)|$)|q\s*\d*\s*:)\s*/i;
const ANSWER_LABEL = /^(?:answer\s*\d*\s*(?:[:.)]|-(?=\s)|$)|a\s*\d*\s*:)\s*/i;
const SHORT_LABEL = /^[qa]\s*\d*\s*:/i;
// An answer label later on a question's line ("Question: ...? Answer: Paris").
const INLINE_ANSWER = /\s+(?:[-–|]\s*)?answer\s*\d*\s*:\s*/i;
const LIST_MARKER = /^(?:\d+\s*[.):]|[-*•])\s+/;

/** One line without markdown emphasis, heading marks or a list marker; says whether it had one. */
function cleanLine(line: string): { text: string; listed: boolean } {
    let text = line.replace(/\*\*|__|`/g, "").replace(/^\s*#+\s*/, "").trim();
    const listed = LIST_MARKER.test(text);
    if (listed)
        text = text.replace(LIST_MARKER, "");
    return { text: text.replace(/^\*\s*|\s*\*$/g, "").trim(), listed };
}

/**
 * Reads question/answer pairs from generated text, in the shapes instruct models write:
 * `Question: ... / Answer: ...` (questions may span lines, e.g. with their options), bold
 * or numbered labels (`**Question:**`, `Question 1:`, `Q1:`), numbered list items whose
 * text is the question, and a question and its answer on one line.
 */
export function parseTaskPairs(text: string): TaskPair[] {
    const pairs: TaskPair[] = [];
    let question: string[] | null = null;
    // A list item without a label may be a question, if an answer follows it.
    let candidate: string[] | null = null;
    let image = { caption: "", ocr: "" };
    // whether the question was labelled "Q:" (so "A:" answers it)
    let shortLabels = false;
    // an answer label alone on its line: the answer is the next line
    let answerNext: string[] | null = null;
    const emit = (lines: string[], answer: string) => {
        const q = lines.join("\n").trim();
        const a = answer.trim().replace(/^["']|["']$/g, "").trim();
        const seen = { caption: image.caption === "none" ? "" : image.caption, ocr: image.ocr === "none" ? "" : image.ocr };
        if (q.length >= 8 && a.length > 0 && !/question\s*\d*\s*:/i.test(q))
            pairs.push({ question: q, answer: a, ...(seen.caption !== "" || seen.ocr !== "" ? { image: seen } : {}) });
        image = { caption: "", ocr: "" };
    };
    for (const raw of text.split("\n")) {
        const { text: line, listed } = cleanLine(raw);
        if (line === "")
            continue;
        if (answerNext != null) {
            emit(answerNext, line);
            answerNext = null;
            continue;
        }
        // An image's caption and OCR text belong to the question being written, not to its text.
        if ((question != null || candidate != null) && (CAPTION_LABEL.test(line) || OCR_LABEL.test(line))) {
            if (CAPTION_LABEL.test(line))
                image.caption = line.replace(CAPTION_LABEL, "").trim();
            else
                image.ocr = line.replace(OCR_LABEL, "").trim();
            continue;
        }
        if (ANSWER_LABEL.test(line) && (question != null || candidate != null) && (shortLabels || !SHORT_LABEL.test(line))) {
            const answer = line.replace(ANSWER_LABEL, "");
            if (answer.trim() === "")
                answerNext = question ?? candidate!;
            else
                emit(question ?? candidate!, answer);
            question = candidate = null;
            continue;
        }
        if (QUESTION_LABEL.test(line)) {
            const body = line.replace(QUESTION_LABEL, "");
            shortLabels = SHORT_LABEL.test(line);
            candidate = null;
            image = { caption: "", ocr: "" };
            const inline = INLINE_ANSWER.exec(body);
            if (inline != null && inline.index > 0) {
                emit([body.slice(0, inline.index)], body.slice(inline.index + inline[0].length));
                question = null;
            } else {
                question = [body];
            }
            continue;
        }
        if (question != null) {
            question.push(line);
        } else if (listed) {
            const inline = INLINE_ANSWER.exec(line);
            if (inline != null && inline.index > 0) {
                emit([line.slice(0, inline.index)], line.slice(inline.index + inline[0].length));
                candidate = null;
            } else {
                candidate = [line];
            }
        } else if (candidate != null) {
            candidate.push(line);
        }
    }
    return pairs.length > 0 ? pairs : jsonPairs(text);
}

/** Pairs written as JSON objects (`[{"question": ..., "answer": ...}]`, or one object a line). */
function jsonPairs(text: string): TaskPair[] {
    const pairs: TaskPair[] = [];
    for (const match of text.matchAll(/\{[^{}]*\}/g)) {
        let value: Record<string, unknown>;
        try {
            value = JSON.parse(match[0]) as Record<string, unknown>;
        } catch {
            continue;
        }
        const field = (name: string) => Object.entries(value).find(([key]) => key.toLowerCase() === name)?.[1];
        const question = field("question"), answer = field("answer");
        if (typeof question === "string" && question.trim().length >= 8 && (typeof answer === "string" || typeof answer === "number") && String(answer).trim() !== "")
            pairs.push({ question: question.trim(), answer: String(answer).trim() });
    }
    return pairs;
}

/**
 * Keeps a pair only when its normalized question is new, its normalized answer is new too and
 * the answer is not longer than `maxAnswerChars` (0 = no limit). AutoAct keeps only new answers,
 * so a second "yes" or "no" is rejected as well; with `repeatYesNo` yes/no answers may repeat
 * (more yes/no questions, less variety). `answerText` says what an answer is: a multiple-choice
 * task's is the text of the option its letter names (AutoAct's ScienceQA keeps one task per
 * correct option's first word), so "B" twice is two answers when the options differ.
 */
export class TaskDeduplicator {
    private readonly questions = new Set<string>();
    private readonly answers = new Set<string>();
    /** Generated tasks refused because they repeat a held-out (evaluation) question. */
    heldOutRepeats = 0;

    /** `heldOut`: questions no task may repeat (the evaluation sets': a task that copies one would train on the test). */
    constructor(private readonly options: {
        maxAnswerChars: number;
        repeatYesNo?: boolean;
        heldOut?: (question: string) => boolean;
        answerText?: (pair: TaskPair) => string;
    }) {}

    /** Marks a pair as seen without checking it (seeds, resumed batches). */
    remember(pair: TaskPair): void {
        this.questions.add(textKey(pair.question));
        this.answers.add(this.answerKey(pair));
    }

    accept(pair: TaskPair): boolean {
        const question = textKey(pair.question);
        const answer = this.answerKey(pair);
        // the answer as written: a letter "A" normalizes to nothing (the article)
        if (question === "" || pair.answer.trim() === "" || this.questions.has(question))
            return false;
        if (this.options.heldOut?.(pair.question) === true) {
            this.heldOutRepeats++;
            return false;
        }
        if (this.options.maxAnswerChars > 0 && pair.answer.length > this.options.maxAnswerChars)
            return false;
        const yesNo = answer === "yes" || answer === "no";
        if (this.answers.has(answer) && !(yesNo && this.options.repeatYesNo === true))
            return false;
        this.remember(pair);
        return true;
    }

    private answerKey(pair: TaskPair): string {
        return textKey(this.options.answerText?.(pair) ?? pair.answer);
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

// A clause that rejects the tools it names: "Image2Text and Calculator are not needed",
// "we don't need Code", "no need for Calculator", "Calculator is irrelevant", "not Lookup".
const REJECTION = new RegExp([
    String.raw`(?:\b(?:not|never|no)\b|n't)(?:\s+\w+){0,3}?\s+(?:needed|need|necessary|required|useful|relevant|helpful|help|use|used|applicable|suitable|appropriate)\b`,
    String.raw`\b(?:unnecessary|irrelevant|useless|unneeded|no need)\b`,
    String.raw`^\s*(?:not|rather than|instead of|except|but not)\b`
].join("|"), "i");
// A list item, numbered or bulleted: "1. **Search**: ...", "- Retrieve", "* Lookup".
const LIST_ITEM = /^\s*[*_#\s]*(?:\(?\d+\s*[.):]|[-*•])\s*(.*)$/;
// A line that says what was picked: "Selected tools: Image2Text, Search", "I choose:", "**Tools:**".
const PICKS_LINE = /^\s*[*_#\s]*(?:(?:selected|chosen|recommended)\s+tools?|tools?|(?:i|we)\s+(?:choose|pick|select|would\s+use)|my\s+(?:choice|picks?))\s*[*_]*\s*:\s*(.*)$/i;
const REASON_LINE = /^\s*[*_#\s]*(?:reasons?|why)\s*[*_]*\s*:\s*(.*)$/i;

/**
 * Tool names in one piece of text, in order of appearance. In prose only a capitalized name
 * counts: "we may need to search or retrieve facts" names no tool.
 */
function toolsIn(text: string, byKey: Map<string, string>, prose = false): string[] {
    const names: string[] = [];
    for (const word of text.split(/[^A-Za-z0-9_]+/)) {
        const name = byKey.get(toolNameKey(word));
        if (name != null && !names.includes(name) && (!prose || /^[A-Z]/.test(word)))
            names.push(name);
    }
    return names;
}

/** Clauses of a text: sentences and lines, cut again before "but", "rather than", "instead of", ", not". */
function clauses(text: string): string[] {
    return text
        .split(/(?<=[.;!?])\s+|\n+/)
        .flatMap((sentence) => sentence.split(/,?\s+(?=\b(?:but|rather than|instead of|except)\b)|,\s+(?=\b(?:not|while|whereas)\b)/i));
}

/**
 * Matches tool names in the meta-agent's answer back to the library (case, spaces and
 * punctuation ignored), in this order of trust: a line that says what was picked ("Selected
 * tools: A, B, C"); else the items of a list, numbered or bulleted, or lines that are a tool's
 * name alone (the first tool of each); else the capitalized tool names of the prose. A
 * "Reason:" line is the why, wherever it stands. Tools named in a negated clause
 * ("Image2Text and Calculator are not needed") are not picks. Missing picks are filled from
 * `fallback`, in its order, and marked as such.
 */
export function parseToolSelection(text: string, library: string[], count: number, fallback: string[]): ParsedToolSelection {
    const byKey = new Map(library.map((name) => [toolNameKey(name), name] as const));
    const reasonLine = text.split("\n").find((line) => REASON_LINE.test(line));
    const lines = text.split("\n").filter((line) => !REASON_LINE.test(line));
    const affirmed = (piece: string) => clauses(piece).filter((clause) => !REJECTION.test(clause));
    const firstTool = (piece: string) => affirmed(piece).flatMap((clause) => toolsIn(clause, byKey))[0];
    const stated = lines.map((line) => PICKS_LINE.exec(line)?.[1] ?? "").map((rest) => affirmed(rest).flatMap((clause) => toolsIn(clause, byKey)))
        .find((names) => names.length > 0);
    const items = lines.filter((line) => LIST_ITEM.test(line) || byKey.has(toolNameKey(line.replace(/[*_`#:.\s]/g, ""))))
        .map((line) => firstTool(LIST_ITEM.exec(line)?.[1] ?? line)).filter((name): name is string => name != null);
    const candidates = stated ?? (items.length > 0 ? items : affirmed(lines.join("\n")).flatMap((clause) => toolsIn(clause, byKey, true)));
    const found: string[] = [];
    for (const name of candidates) {
        if (!found.includes(name))
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
    return { chosen, reason: reasonLine == null ? "" : REASON_LINE.exec(reasonLine)![1]!.trim() };
}
