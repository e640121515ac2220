import { loadTasks, type TaskExample } from "../data/datasets/index.js";
import { textKey } from "../metrics/index.js";
import { InputError } from "../util/errors.js";
import type { EvalSetConfig } from "./config-schema.js";
import type { StageContext } from "./context.js";

export type EvalExample = TaskExample;

/** Where an evaluation set's questions are: its own file, or the official file and the split's ids. */
export async function evalSetSource(context: StageContext, set: EvalSetConfig): Promise<{ file: string; ids: string[] | null }> {
    const local = context.data.find(set.file);
    if (local != null)
        return { file: local, ids: null };
    const ids = context.data.descriptorInfo()?.splits?.[set.name];
    const official = ids == null ? null : await context.data.officialFile();
    if (official == null || ids == null)
        throw new InputError(`evaluation set "${set.name}": file "${set.file}" not found in ${context.data.dirs.join(", ")}`, {
            hint: "pass --data DIR with the folder that holds it"
        });
    return { file: official.file, ids };
}

/**
 * The questions of one evaluation set: its file from the data folders, or, when that file
 * is not at hand, the dataset's official file (downloaded into the cache) narrowed to the
 * split's question ids that the descriptor records.
 */
export async function loadEvalExamples(context: StageContext, set: EvalSetConfig): Promise<EvalExample[]> {
    const { file, ids } = await evalSetSource(context, set);
    const examples: TaskExample[] = await loadTasks({ file, format: set.format, ...(ids != null ? { ids } : {}) });
    if (examples.length === 0)
        throw new InputError(`evaluation set "${set.name}" (${set.file}) has no questions`);
    return examples;
}

/**
 * Whether a question is one of the evaluation sets' (all of each set, whatever its limit),
 * compared as HotpotQA's normalization leaves it: training on one would contaminate the scores.
 * The stages that use it declare the sets as inputs (`evalSetInputs`).
 */
export async function evalQuestionCheck(context: StageContext): Promise<(question: string) => boolean> {
    const keys = new Set<string>();
    for (const set of context.config.data.eval)
        for (const example of await loadEvalExamples(context, set))
            keys.add(textKey(example.question));
    return (question) => keys.has(textKey(question));
}
