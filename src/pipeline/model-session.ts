import { createEngine, type Engine, type Generator, type LoadedModel } from "../llm/engine.js";
import type { AdapterSpec } from "../llm/types.js";
import { createPromptFormatter, type PromptFormatter } from "../llm/prompt-format.js";
import { AgentModel } from "../agents/agent-model.js";
import type { PipelineConfig } from "./config-schema.js";

/**
 * The model of one pipeline run, loaded once and shared by every stage: one engine, one
 * loaded model, and one generator (context) per adapter set, so the three sub-agents of
 * group planning share the base weights. With `model.backend: openai` the generators send
 * the same prompts to the configured servers instead (the model is loaded vocabulary-only).
 */
export class ModelSession {
    private engine: Engine | null = null;
    private model: LoadedModel | null = null;
    private formatterValue: PromptFormatter | null = null;
    private readonly generators = new Map<string, Promise<Generator>>();

    constructor(readonly modelPath: string, private readonly config: PipelineConfig["model"]) {}

    /** Whether OpenAI-compatible servers run the model (`model.backend: openai`). */
    get remote(): boolean {
        return this.config.backend === "openai";
    }

    async loaded(): Promise<LoadedModel> {
        if (this.model == null) {
            this.engine = await createEngine({
                gpu: this.remote ? "cpu" : this.config.gpu,
                helper: !this.remote,
                threads: this.config.threads > 0 ? this.config.threads : undefined
            });
            // A remote backend needs only the vocabulary and template: the servers hold the weights.
            this.model = await this.engine.loadModel(this.modelPath, { vocabOnly: this.remote });
            this.formatterValue = createPromptFormatter(this.model.model, { template: this.config.template });
        }
        return this.model;
    }

    async formatter(): Promise<PromptFormatter> {
        await this.loaded();
        return this.formatterValue!;
    }

    /** Context size every sequence gets: the config's, capped by the model's training context. */
    async contextSize(): Promise<number> {
        const model = await this.loaded();
        const train = model.info.trainContextSize;
        return train > 0 ? Math.min(this.config.context_size, train) : this.config.context_size;
    }

    /** A generator with the given adapters (none = the base model), created once per adapter set. */
    async generator(adapters: AdapterSpec[] = []): Promise<Generator> {
        const key = JSON.stringify(adapters.map((a) => [a.filePath, a.scale ?? 1]));
        let generator = this.generators.get(key);
        if (generator == null) {
            generator = (async () => {
                const model = await this.loaded();
                if (this.remote) {
                    return model.createRemoteGenerator({
                        endpoints: this.config.endpoints,
                        concurrency: this.config.parallel,
                        server: this.config.server,
                        servedName: this.config.served_name,
                        timeoutS: this.config.timeout_s,
                        retries: this.config.retries,
                        contextSize: await this.contextSize(),
                        adapters
                    });
                }
                return model.createGenerator({
                    parallel: this.config.parallel,
                    contextSize: await this.contextSize(),
                    adapters
                });
            })();
            this.generators.set(key, generator);
            // A failure (a bad adapter) is not kept: the next call tries again, dispose skips it.
            generator.catch(() => {
                if (this.generators.get(key) === generator)
                    this.generators.delete(key);
            });
        }
        return generator;
    }

    async agent(name: string, adapters: AdapterSpec[] = []): Promise<AgentModel> {
        return new AgentModel({ name, generator: await this.generator(adapters), formatter: await this.formatter() });
    }

    /** Frees the generators, the model and the engine, whatever failed before; a second call has nothing to do. */
    async dispose(): Promise<void> {
        const generators = [...this.generators.values()];
        this.generators.clear();
        // One that failed to be made was reported to its caller; the model and engine go regardless.
        await Promise.allSettled(generators.map(async (generator) => await (await generator).dispose()));
        const model = this.model;
        const engine = this.engine;
        this.model = null;
        this.engine = null;
        this.formatterValue = null;
        try {
            await model?.dispose();
        } finally {
            await engine?.dispose();
        }
    }
}
