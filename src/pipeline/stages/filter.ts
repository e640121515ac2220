import type { FilteredRow } from "../../data/schemas.js";
import { readTable, writeTable } from "../../data/table-io.js";
import type { StageDefinition } from "../context.js";
import { choicesFromQuestion, scoreTaskAnswer } from "../task-setup.js";
import { evalSetInputs } from "../data-inputs.js";
import { evalQuestionCheck } from "../eval-data.js";
import { SeededRandom } from "../../util/random.js";

/**
 * Filtering: scores every trajectory's final answer against its task's answer (EM and F1
 * with HotpotQA's normalization, or option match) and keeps the right ones, up to `max`: the
 * seeds' (the few-shot exemplars are made of them), then others chosen at random (as the
 * original shuffles before it takes 200: the first ones synthesized would be the early
 * rounds' tasks), in synthesis order.
 * A trajectory on a question of the evaluation sets is never kept, however it came (the
 * instruct stage holds them out; `autoact import` brings the original's trajectories, which
 * may be its evaluation runs).
 */
export const filterStage: StageDefinition = {
    name: "filter",
    description: "Filtering: keep trajectories whose final answer is right",
    reads: { config: ["filter", "task.kind", "data.eval[].file", "data.eval[].format"], tables: ["trajectories.arrow", "tasks.arrow"], data: evalSetInputs, model: false, limit: false },
    writes: { files: () => ["filtered.arrow"] },
    async run(context) {
        const settings = context.config.filter;
        const trajectories = await readTable(context.runDir.file("trajectories.arrow"), "trajectories");
        const tasks = new Map((await readTable(context.runDir.file("tasks.arrow"), "tasks")).map((t) => [t.id, t]));
        const scored: FilteredRow[] = trajectories.map((trajectory) => {
            const task = tasks.get(trajectory.task_id);
            const choices = task?.choices ?? choicesFromQuestion(trajectory.question);
            return { ...trajectory, ...scoreTaskAnswer(context.config.task, trajectory.final_answer, trajectory.gold_answer, choices) };
        });
        const isEvalQuestion = await evalQuestionCheck(context);
        const onEval = scored.filter((row) => isEvalQuestion(row.question)).length;
        if (onEval > 0)
            context.log(`filter: left out ${onEval} of ${scored.length} trajectories whose question is one of the evaluation sets' (training on them would contaminate the scores)`);
        // only a trajectory that ended with Finish has an answer to judge
        const finished = scored.filter((row) => row.stop_reason === "finished" && !isEvalQuestion(row.question));
        const kept = finished.filter((row) => (settings.keep === "correct" ? row.correct : row.f1 >= settings.min_f1));
        // the seeds' right trajectories first: the few-shot baselines' exemplars are made of them
        const isSeed = (row: FilteredRow) => tasks.get(row.task_id)?.source === "seed";
        const limitedKept = settings.max > 0 && kept.length > settings.max ? keepAtRandom(kept, settings.max, settings.seed, isSeed) : kept;
        await writeTable(context.runDir.file("filtered.arrow"), "filtered", limitedKept);
        if (limitedKept.length === 0) {
            const rule = `keep: ${settings.keep}${settings.keep === "f1" ? ` >= ${settings.min_f1}` : ""}`;
            context.log(`filter: kept 0 of ${scored.length} trajectories (${rule}; ${finished.length} of them ended with Finish and an answer); training will have no samples`);
        }
        const mean = (values: number[]) => (values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);
        return {
            outputs: { "filtered.arrow": limitedKept.length },
            stats: {
                trajectories: scored.length,
                finished: finished.length,
                eval_questions: onEval,
                kept: limitedKept.length,
                right: scored.filter((r) => r.correct).length,
                mean_em: mean(scored.map((r) => r.em)),
                mean_f1: mean(scored.map((r) => r.f1))
            }
        };
    }
};

/** `count` of `rows`, the `first` ones and the rest chosen at random with `seed`, in their own order. */
function keepAtRandom<T>(rows: readonly T[], count: number, seed: number, first: (row: T) => boolean): T[] {
    const indices = rows.map((_, i) => i);
    const given = indices.filter((i) => first(rows[i]!)).slice(0, count);
    const others = indices.filter((i) => !first(rows[i]!));
    const chosen = new Set([...given, ...new SeededRandom(seed).sample(others, count - given.length)]);
    return rows.filter((_, i) => chosen.has(i));
}
