/** A paragraph of a task's own context (HotpotQA's distractor paragraphs). */
export interface ContextParagraph {
    title: string;
    sentences: string[];
}

/** One task, whatever file it came from. Every loader returns this shape. */
export interface TaskExample {
    /** Unique within the file (HotpotQA `_id`, ScienceQA `pid`, or `<file stem>-<line>`). */
    id: string;
    question: string;
    /** The gold answer: free text, or the gold option's letter for multiple choice. */
    answer: string;
    /** Option texts in order (A, B, ...) for multiple-choice tasks. */
    choices?: string[];
    /** A difficulty or grade band used to group metrics (HotpotQA level, ScienceQA "1-4"). */
    level?: string;
    /** The paragraphs that come with the question (HotpotQA). */
    context?: ContextParagraph[];
    /** The task's image, as precomputed caption and OCR text. */
    image?: { caption: string; ocr: string };
    /** Everything else the source file has (type, supporting facts, subject, grade...). */
    meta?: Record<string, unknown>;
}

export type DatasetFormat = "auto" | "hotpotqa" | "scienceqa" | "jsonl" | "seeds";
