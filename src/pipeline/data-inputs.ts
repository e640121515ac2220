import type { StageContext } from "./context.js";
import { evalSetSource } from "./eval-data.js";

/**
 * The data files of a run, by role, found exactly as the stages find them; stage
 * declarations combine them (`reads.data`) so that their content is a stage input.
 */
export type DataInputs = (context: StageContext) => Promise<Record<string, string>>;

export const seedsInput: DataInputs = async (context) =>
    ({ seeds: await context.data.requireSeeds(context.config.data.seeds) });

/** The corpus sources (`data.corpus`): the corpus that the tools search is imported from them. */
export const corpusInputs: DataInputs = async (context) => Object.fromEntries(await Promise.all(
    context.config.data.corpus.map(async (name) => [`corpus.${name}`, (await context.data.requireCorpus(name)).file])));

/**
 * The evaluation sets' files, by file name (a set's name and limit are config values, declared
 * where they matter), and by set name too where the name picks the questions (the split's ids
 * in the dataset's official file).
 */
export const evalSetInputs: DataInputs = async (context) => Object.fromEntries(await Promise.all(
    context.config.data.eval.map(async (set) => {
        const source = await evalSetSource(context, set);
        return [source.ids == null ? `eval.${set.file}` : `eval.${set.file}#${set.name}`, source.file];
    })));

/** Several inputs together (`when` false leaves one out). */
export function dataInputs(...parts: (DataInputs | [DataInputs, (context: StageContext) => boolean])[]): DataInputs {
    return async (context) => {
        const all: Record<string, string> = {};
        for (const part of parts) {
            const [inputs, when] = Array.isArray(part) ? part : [part, () => true];
            if (when(context))
                Object.assign(all, await inputs(context));
        }
        return all;
    };
}
