import { readTable } from "../data/table-io.js";
import { renderTaskHeader } from "../agents/react-format.js";
import type { ToolRunner } from "../agents/episode.js";
import { createToolLibrary, type ToolLibrary } from "../tools/index.js";
import { optionMatch, scoreAnswer } from "../metrics/index.js";
import type { PipelineConfig } from "./config-schema.js";
import type { StageContext } from "./context.js";
import { ensureRunCorpus } from "./corpus.js";
import { InputError } from "../util/errors.js";

/**
 * What synthesis, division of labor and evaluation share: the selected tools, the task
 * header built from them (byte-identical in all three), the tool runner and the scoring.
 */
export interface TaskSetup {
    header: string;
    selected: string[];
    library: ToolLibrary;
    runner: ToolRunner;
    close(): void;
}

export async function readSelectedTools(context: StageContext): Promise<string[]> {
    const file = context.runDir.file("tools.arrow");
    const rows = await readTable(file, "tools");
    const selected = rows.filter((row) => row.selected).sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0)).map((row) => row.name);
    if (selected.length === 0)
        throw new InputError(`${file}: no tool is selected; rerun the select-tools stage`);
    return selected;
}

export async function openTaskSetup(context: StageContext, options: { withCorpus?: boolean } = {}): Promise<TaskSetup> {
    const selected = await readSelectedTools(context);
    const needsCorpus = options.withCorpus ?? selected.some((name) => ["search", "retrieve", "lookup"].includes(name.toLowerCase()));
    const library = createToolLibrary({ corpusDb: needsCorpus ? await ensureRunCorpus(context) : undefined });
    const tools = library.select(selected);
    const header = taskHeader(context.config, tools);
    const runner: ToolRunner = {
        names: tools.map((tool) => tool.name),
        resolve: (name) => {
            const tool = library.get(name);
            return tool != null && tool.kind === "tool" && selected.includes(tool.name) ? tool.name : null;
        },
        run: async (name, argument, session) => (await library.execute({ name, argument, complete: true }, session)).observation
    };
    return { header, selected, library, runner, close: () => library.close() };
}

export function taskHeader(config: PipelineConfig, tools: { name: string; signature: string; description: string; example: string }[]): string {
    return renderTaskHeader({ description: config.description, kind: config.task.kind, tools });
}

export interface AnswerScore {
    em: number;
    f1: number;
    correct: boolean;
}

/** Scores a prediction by the task's metric: EM/F1 for free text, option match for choices. */
export function scoreTaskAnswer(task: PipelineConfig["task"], prediction: string | null, gold: string, choices: readonly string[] | null): AnswerScore {
    if (prediction == null)
        return { em: 0, f1: 0, correct: false };
    if (task.kind === "multiple-choice") {
        const right = optionMatch(prediction, gold, choices ?? []);
        return { em: right ? 1 : 0, f1: right ? 1 : 0, correct: right };
    }
    const score = scoreAnswer(prediction, gold);
    return { em: score.em, f1: score.f1, correct: score.em === 1 };
}

/** Options written in a question ("Options: (A) x (B) y"), for generated multiple-choice tasks. */
export function choicesFromQuestion(question: string): string[] | null {
    const options = /Options?\s*:\s*([\s\S]*)$/i.exec(question)?.[1];
    if (options == null)
        return null;
    const parts = [...options.matchAll(/\(([A-Z])\)\s*([\s\S]*?)(?=\s*\([A-Z]\)|$)/g)].map((m) => m[2]!.trim());
    return parts.length >= 2 ? parts : null;
}
