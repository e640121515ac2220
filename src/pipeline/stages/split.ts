import { divideTrajectory } from "../../agents/division.js";
import type { SampleRow, TrajectoryRow } from "../../data/schemas.js";
import { readTable, writeTable } from "../../data/table-io.js";
import type { StageDefinition } from "../context.js";
import { needsAdapters } from "../eval-methods.js";
import { openTaskSetup } from "../task-setup.js";
import { evalSetInputs } from "../data-inputs.js";
import { evalQuestionCheck } from "../eval-data.js";

/**
 * Division of labor: cuts every kept trajectory into plan, tool and reflect samples, with
 * the same task header and prompt text group planning asks the sub-agents with. When the
 * -filtering ablation is evaluated, up to `filter.max` trajectories taken without the filter
 * (right or wrong, but none on an evaluation question) are cut too (samples-unfiltered.arrow),
 * for the adapters that ablation trains.
 */
export const splitStage: StageDefinition = {
    name: "split",
    description: "Division of labor: plan / tool / reflect training samples",
    reads: {
        config: ["description", "task.kind", "split", "eval.methods", "filter.max", "data.eval[].file", "data.eval[].format"],
        tables: (context) => ["filtered.arrow", "tools.arrow", ...(unfilteredWanted(context.config.eval.methods) ? ["trajectories.arrow"] : [])],
        // the unfiltered trajectories are kept off the evaluation questions as the filter keeps its own
        data: async (context) => (unfilteredWanted(context.config.eval.methods) ? await evalSetInputs(context) : {}),
        model: false,
        limit: false
    },
    writes: { files: (context) => ["samples.arrow", ...(unfilteredWanted(context.config.eval.methods) ? ["samples-unfiltered.arrow"] : [])] },
    async run(context) {
        const filtered = await readTable(context.runDir.file("filtered.arrow"), "filtered");
        const setup = await openTaskSetup(context, { withCorpus: false });
        setup.close();
        const divide = (trajectories: readonly Pick<TrajectoryRow, "id" | "question" | "steps">[]): SampleRow[] => trajectories.flatMap((trajectory) =>
            divideTrajectory(setup.header, trajectory.question, trajectory.steps, { finishBy: context.config.split.finish_by })
                .map((sample, i) => ({ id: `${trajectory.id}-${i}`, trajectory_id: trajectory.id, ...sample })));
        const rows = divide(filtered);
        await writeTable(context.runDir.file("samples.arrow"), "samples", rows);
        const count = (samples: SampleRow[], agent: string) => samples.filter((r) => r.agent === agent).length;
        const outputs: Record<string, number> = { "samples.arrow": rows.length };
        const stats: Record<string, number | string> = {
            trajectories: filtered.length, finish_by: context.config.split.finish_by,
            plan: count(rows, "plan"), tool: count(rows, "tool"), reflect: count(rows, "reflect")
        };
        if (unfilteredWanted(context.config.eval.methods)) {
            // As many trajectories as the filter keeps at most, right or wrong; never on an eval question.
            const isEvalQuestion = await evalQuestionCheck(context);
            const all = (await readTable(context.runDir.file("trajectories.arrow"), "trajectories")).filter((t) => !isEvalQuestion(t.question));
            const max = context.config.filter.max;
            const unfiltered = divide(max > 0 ? all.slice(0, max) : all);
            await writeTable(context.runDir.file("samples-unfiltered.arrow"), "samples", unfiltered);
            outputs["samples-unfiltered.arrow"] = unfiltered.length;
            stats.unfiltered_samples = unfiltered.length;
        }
        return { outputs, stats };
    }
};

function unfilteredWanted(methods: Parameters<typeof needsAdapters>[0]): boolean {
    return needsAdapters(methods, "unfiltered");
}
