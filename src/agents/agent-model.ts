import type { Generator, GenerationResult } from "../llm/engine.js";
import type { PromptFormatter } from "../llm/prompt-format.js";

export interface Sampling {
    temperature: number;
    topP?: number;
    topK?: number;
    maxTokens: number;
    stop?: string[];
    seed?: number;
}

/**
 * An agent = a generator (a context, with or without a LoRA adapter) + the project's prompt
 * formatter. Every agent prompt goes through `formatPrompt`, the same function that builds
 * the training samples.
 */
export class AgentModel {
    readonly name: string;
    private readonly generator: Generator;
    private readonly formatter: PromptFormatter;

    constructor(options: { name: string; generator: Generator; formatter: PromptFormatter }) {
        this.name = options.name;
        this.generator = options.generator;
        this.formatter = options.formatter;
    }

    async complete(input: string, sampling: Sampling): Promise<GenerationResult> {
        return this.generator.complete({
            prompt: this.formatter.formatPrompt(input),
            maxTokens: sampling.maxTokens,
            stop: sampling.stop,
            temperature: sampling.temperature,
            topP: sampling.topP,
            topK: sampling.topK,
            seed: sampling.seed
        });
    }
}
