import { parentPort } from "node:worker_threads";
import { runSandboxedInline, type SandboxOptions } from "./sandbox-core.js";

// Worker side of sandbox.ts, which sends one run at a time and waits for its answer.
parentPort?.on("message", async (message: { id: number; code: string; options: SandboxOptions }) => {
    const result = await runSandboxedInline(message.code, message.options);
    parentPort?.postMessage({ id: message.id, result });
});
