import { loadTasks, type TaskExample } from "../data/datasets/index.js";
import { InputError } from "../util/errors.js";
import type { EvalSetConfig } from "./config-schema.js";
import type { StageContext } from "./context.js";

export type EvalExample = TaskExample;

/**
 * The questions of one evaluation set: its file from the data folders, or, when that file
 * is not at hand, the dataset's official file (downloaded into the cache) narrowed to the
 * split's question ids that the descriptor records.
 */
export async function loadEvalExamples(context: StageContext, set: EvalSetConfig): Promise<EvalExample[]> {
    const local = context.data.find(set.file);
    let examples: TaskExample[];
    if (local != null) {
        examples = await loadTasks({ file: local, format: set.format });
    } else {
        const ids = context.data.descriptorInfo()?.splits?.[set.name];
        const official = ids == null ? null : await context.data.officialFile();
        if (official == null || ids == null)
            throw new InputError(`evaluation set "${set.name}": file "${set.file}" not found in ${context.data.dirs.join(", ")}`, {
                hint: "pass --data DIR with the folder that holds it"
            });
        examples = await loadTasks({ file: official.file, format: set.format, ids });
    }
    if (examples.length === 0)
        throw new InputError(`evaluation set "${set.name}" (${set.file}) has no questions`);
    return examples;
}
