import { InputError } from "../util/errors.js";
import type { TaskPair } from "../agents/meta-agent.js";
import { scienceqaImage } from "../data/datasets/loaders.js";
import { readJsonFile } from "../data/datasets/records.js";

/**
 * Reads a seeds file: a JSON list of `{"Question": ..., "Answer": ...}` (AutoAct's shape;
 * ScienceQA's adds `caption` and `orc`, and the original's self-instruct output writes them
 * `Caption` and `Ocr`, with the options apart in `Options`, which go back into the question).
 */
export function readSeeds(file: string): TaskPair[] {
    // the shared reader: a BOM is skipped, a missing file or bad JSON said in one line
    const value = readJsonFile(file, "seeds file");
    if (!Array.isArray(value) || value.length === 0)
        throw new InputError(`${file}: expected a non-empty JSON list of {"Question": ..., "Answer": ...}`);
    return value.map((item, i) => {
        const record = item as Record<string, unknown>;
        const question = record?.Question ?? record?.question;
        const answer = record?.Answer ?? record?.answer;
        if (typeof question !== "string" || question.trim() === "" || (typeof answer !== "string" && typeof answer !== "number"))
            throw new InputError(`${file}: seed ${i + 1} needs a "Question" string and an "Answer"`);
        // ScienceQA seeds carry their image as caption and OCR: Image2Text reads them.
        const image = scienceqaImage(record.caption ?? record.Caption, record.orc ?? record.Ocr);
        const options = typeof record.Options === "string" && record.Options.trim() !== "" ? record.Options.trim() : null;
        const withOptions = options == null ? question.trim() : `${question.trim()}\n${/^options?\s*:/i.test(options) ? options : `Options: ${options}`}`;
        return { question: withOptions, answer: String(answer).trim(), ...(image != null ? { image } : {}) };
    });
}
