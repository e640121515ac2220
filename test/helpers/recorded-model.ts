import { AgentModel } from "../../src/agents/agent-model.js";
import type { Generator } from "../../src/llm/engine.js";
import type { GenerationResult } from "../../src/llm/types.js";
import type { PromptFormatter } from "../../src/llm/prompt-format.js";

/**
 * Model text recorded from real models (the original's Llama-2-13B sub-agents, instruct
 * models' replies), played back in order, so the logic that reads model text is driven by
 * real text. It keeps every prompt it was asked with, as text: the formatter writes the
 * prompt's characters as "tokens", and the player reads them back.
 */
export class RecordedModel {
    readonly prompts: string[] = [];
    private readonly replies: string[];

    /** `contextSize`: a prompt longer than this many characters gets what the engine gives one that does not fit (no text, "contextFull"). */
    constructor(readonly name: string, replies: readonly string[], private readonly options: { contextSize?: number } = {}) {
        this.replies = [...replies];
    }

    /** An agent (as stages and policies use them) over this recording. */
    agent(): AgentModel {
        const formatter: PromptFormatter = {
            kind: "plain",
            templateName: "recorded",
            formatPrompt: (input) => [...input].map((c) => c.codePointAt(0)!),
            endTokens: []
        };
        const generator = {
            complete: async (request: { prompt: number[] | string; stop?: string[] }): Promise<GenerationResult> => {
                const prompt = typeof request.prompt === "string" ? request.prompt : String.fromCodePoint(...request.prompt);
                this.prompts.push(prompt);
                if (prompt.length > (this.options.contextSize ?? Infinity))
                    return { text: "", tokens: [], stopReason: "contextFull", promptTokens: prompt.length, generatedTokens: 0, timeMs: 1 } as GenerationResult;
                const reply = this.replies.shift();
                if (reply == null)
                    throw new Error(`${this.name}: no recorded reply left for prompt ending ${JSON.stringify(prompt.slice(-80))}`);
                // A stop string cuts the text as the engine does.
                let text = reply;
                for (const stop of request.stop ?? []) {
                    const at = text.indexOf(stop);
                    if (at >= 0)
                        text = text.slice(0, at);
                }
                return { text, tokens: [], stopReason: "stop", promptTokens: prompt.length, generatedTokens: text.length, timeMs: 1 } as GenerationResult;
            }
        } as unknown as Generator;
        return new AgentModel({ name: this.name, generator, formatter });
    }

    /** Replies not used (a test expects none left). */
    get remaining(): number {
        return this.replies.length;
    }
}
