import { divideTrajectory } from "../../agents/division.js";
import type { SampleRow } from "../../data/schemas.js";
import { readTable, writeTable } from "../../data/table-io.js";
import type { StageDefinition } from "../context.js";
import { openTaskSetup } from "../task-setup.js";

/**
 * Division of labor: cuts every kept trajectory into plan, tool and reflect samples, with
 * the same task header and prompt text group planning asks the sub-agents with.
 */
export const splitStage: StageDefinition = {
    name: "split",
    description: "Division of labor: plan / tool / reflect training samples",
    reads: { config: ["description", "task"], tables: ["filtered.arrow", "tools.arrow"], model: false, limit: false },
    writes: { files: () => ["samples.arrow"] },
    async run(context) {
        const filtered = await readTable(context.runDir.file("filtered.arrow"), "filtered");
        const setup = await openTaskSetup(context, { withCorpus: false });
        setup.close();
        const rows: SampleRow[] = [];
        for (const trajectory of filtered) {
            divideTrajectory(setup.header, trajectory.question, trajectory.steps).forEach((sample, i) => {
                rows.push({ id: `${trajectory.id}-${i}`, trajectory_id: trajectory.id, ...sample });
            });
        }
        await writeTable(context.runDir.file("samples.arrow"), "samples", rows);
        const count = (agent: string) => rows.filter((r) => r.agent === agent).length;
        return {
            outputs: { "samples.arrow": rows.length },
            stats: { trajectories: filtered.length, plan: count("plan"), tool: count("tool"), reflect: count("reflect") }
        };
    }
};
