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
    /** The header without Reflect, for plain ReAct (the baselines). */
    plainHeader: string;
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
    const plainHeader = taskHeader(context.config, tools, { reflection: false });
    const runner: ToolRunner = {
        names: tools.map((tool) => tool.name),
        resolve: (name) => {
            const tool = library.get(name);
            return tool != null && tool.kind === "tool" && selected.includes(tool.name) ? tool.name : null;
        },
        run: async (name, argument, session) => (await library.execute({ name, argument, complete: true }, session)).observation
    };
    return { header, plainHeader, selected, library, runner, close: () => library.close() };
}

export function taskHeader(config: PipelineConfig, tools: { name: string; signature: string; description: string; example: string }[], { reflection = true } = {}): string {
    return renderTaskHeader({ description: config.description, kind: config.task.kind, tools, reflection });
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

/**
 * Options written in a question, for generated multiple-choice tasks: after an "Options:" or
 * "Choices:" label where there is one, a run of letters from A in any of the ways models mark
 * them ("(A) x (B) y", "A. x B. y", "A) x" or "A: x" on their own lines, lowercase too).
 */
export function choicesFromQuestion(question: string): string[] | null {
    const text = /(?:Options?|Choices?)\s*:\s*([\s\S]*)$/i.exec(question)?.[1] ?? question;
    const markers = [...text.matchAll(/(?:^|\s)(?:\(([A-Za-z])\)|([A-Za-z])[.):])(?=\s)/g)]
        .map((m) => ({ letter: (m[1] ?? m[2])!, start: m.index + m[0].search(/\S/), end: m.index + m[0].length }));
    // the longest run of consecutive letters from A (a), one case: "U.S." or "Vitamin C:" are not options
    let best: typeof markers = [];
    for (let i = 0; i < markers.length; i++) {
        if (markers[i]!.letter.toUpperCase() !== "A")
            continue;
        const run = [markers[i]!];
        for (let j = i + 1; j < markers.length; j++)
            if (markers[j]!.letter.charCodeAt(0) === run.at(-1)!.letter.charCodeAt(0) + 1)
                run.push(markers[j]!);
        if (run.length > best.length)
            best = run;
    }
    if (best.length < 2)
        return null;
    const parts = best.map((marker, i) => text.slice(marker.end, best[i + 1]?.start ?? text.length).trim());
    return parts.every((part) => part !== "") ? parts : null;
}
