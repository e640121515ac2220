import fs from "node:fs";
import path from "node:path";
import { startLlamaServer, type RunningServer } from "../../src/deploy/llama-server.js";
import { trainAdapter } from "../../src/train/index.js";
import { THREADS, loadModel, nativeBuild, samplesFile, stories260K, tempDir, textSample } from "../train/helpers.js";

export type AgentAdapters = Record<"plan" | "tool" | "reflect", string>;

export interface ServedModel {
    dir: string;
    adapters: AgentAdapters;
    llamaServer: string;
    server: RunningServer;
    /** Starts the server again (same port) after a test killed it. */
    restart(): Promise<RunningServer>;
    close(): Promise<void>;
}

/** What each sub-agent's adapter is trained to say after "Once upon a time". */
export const adapterTexts = { plan: "Search the capital of France.", tool: "Lookup[Paris]", reflect: "The answer is right." };

/** Three sub-agent adapters on stories260K, trained by the native trainer (30 steps each, a second or two). */
export async function trainStoriesAdapters(dir: string, options: { lr?: number } = {}): Promise<AgentAdapters> {
    const build = await nativeBuild();
    const base = await loadModel(stories260K);
    const adapters = {} as AgentAdapters;
    for (const [agent, response] of Object.entries(adapterTexts) as [keyof AgentAdapters, string][]) {
        const data = await samplesFile(dir, [textSample(base, "Once upon a time", ` ${response}`)], `${agent}.bin`);
        const result = await trainAdapter({
            trainer: build.trainer, base: stories260K, samplesFile: data, out: path.join(dir, `${agent}.gguf`), agent,
            steps: 30, lr: options.lr ?? 1e-2, rank: 4, ctx: 64, threads: THREADS, forwardSignals: false
        });
        adapters[agent] = result.adapterPath;
    }
    await base.dispose();
    return adapters;
}

/**
 * stories260K served by a real llama-server (from `autoact native build`) with the three adapters.
 * llama-server answers 500 when a generation is not valid UTF-8 (its output parser rejects it),
 * which strongly trained adapters on this tiny model sometimes produce: runs of whole episodes
 * train them gently (`lr`).
 */
export async function serveStoriesWithAdapters(label: string, options: { parallel?: number; lr?: number } = {}): Promise<ServedModel> {
    const dir = tempDir(label);
    const build = await nativeBuild();
    const adapters = await trainStoriesAdapters(dir, { lr: options.lr });
    const serverOptions = {
        binary: build.llamaServer, model: stories260K, adapters: Object.values(adapters), parallel: options.parallel ?? 4, contextSize: 1024, threads: THREADS
    };
    const served: ServedModel = {
        dir, adapters, llamaServer: build.llamaServer,
        server: await startLlamaServer(serverOptions),
        restart: async () => {
            await served.server.stop();
            served.server = await startLlamaServer({ ...serverOptions, port: served.server.port });
            return served.server;
        },
        close: async () => {
            await served.server.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        }
    };
    return served;
}
