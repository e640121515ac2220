import { parseToolSelection, toolSelectionPrompt } from "../../agents/meta-agent.js";
import { writeTable } from "../../data/table-io.js";
import { createToolLibrary } from "../../tools/index.js";
import type { StageDefinition } from "../context.js";

/**
 * Tool selection: the meta-agent reads the task and the library and names the tools it
 * wants; names are matched back to the library, missing picks come from the configured
 * fallback and are recorded as such.
 */
export const selectToolsStage: StageDefinition = {
    name: "select-tools",
    description: "Tool selection by the meta-agent",
    reads: {
        config: ["name", "description", "tools", "model.template", "model.context_size"],
        tables: [],
        model: true,
        limit: false
    },
    writes: { files: () => ["tools.arrow"] },
    async run(context) {
        const { config } = context;
        const library = createToolLibrary();
        const candidates = library.select(config.tools.library).filter((tool) => tool.kind === "tool");
        library.close();
        const agent = await context.model.agent("meta");
        const prompt = toolSelectionPrompt({
            name: config.name,
            description: config.description,
            tools: candidates.map((tool) => ({ name: tool.name, description: tool.description })),
            count: config.tools.count
        });
        const result = await agent.complete(prompt, { temperature: 0, maxTokens: 96 });
        const parsed = parseToolSelection(result.text, candidates.map((t) => t.name), config.tools.count, config.tools.fallback);
        const rows = candidates.map((tool) => {
            const choice = parsed.chosen.find((c) => c.name === tool.name);
            return {
                name: tool.name,
                selected: choice != null,
                rank: choice?.rank ?? null,
                reason: choice == null ? "" : choice.fallback ? "fallback: the meta-agent's answer did not name enough tools" : parsed.reason,
                fallback: choice?.fallback ?? false,
                raw: result.text
            };
        });
        await writeTable(context.runDir.file("tools.arrow"), "tools", rows);
        const fallbacks = parsed.chosen.filter((c) => c.fallback).length;
        context.log(`select-tools: ${parsed.chosen.map((c) => c.name + (c.fallback ? " (fallback)" : "")).join(", ")}`);
        return {
            outputs: { "tools.arrow": rows.length },
            stats: {
                selected: parsed.chosen.map((c) => c.name).join(","),
                fallbacks,
                generated_tokens: result.generatedTokens,
                tokens_per_s: result.generatedTokens / Math.max(1e-3, result.timeMs / 1000)
            }
        };
    }
};
