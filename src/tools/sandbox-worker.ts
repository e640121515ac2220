import { parentPort } from "node:worker_threads";
import { runSandboxedInline, type SandboxOptions } from "./sandbox-core.js";

// Worker side of sandbox.ts: one run at a time, in message order.
parentPort?.on("message", async (message: { id: number; code: string; options: SandboxOptions }) => {
    const result = await runSandboxedInline(message.code, message.options);
    parentPort?.postMessage({ id: message.id, result });
});
