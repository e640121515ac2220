import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { packageRoot } from "../util/package.js";
import { runSandboxedInline, type SandboxOptions, type SandboxResult } from "./sandbox-core.js";

export { runSandboxedInline, type SandboxOptions, type SandboxResult } from "./sandbox-core.js";

/** Extra time the worker gets past `timeoutMs` (for QuickJS's own interrupt) before it is killed. */
const GRACE_MS = 500;

interface Job {
    code: string;
    options: SandboxOptions;
    resolve: (result: SandboxResult) => void;
}

let worker: Worker | undefined;
let nextId = 1;
/** Runs waiting for the worker, and the one it is running (with its id and hard deadline). */
const queue: Job[] = [];
let running: (Job & { id: number; timer: NodeJS.Timeout }) | undefined;

/**
 * Runs untrusted JavaScript in the QuickJS sandbox on a worker thread, so a run never blocks
 * the event loop (parallel sequences keep generating) and a run that overruns its time limit
 * (QuickJS cannot interrupt a long native built-in) is stopped by terminating the worker.
 * The worker gets one run at a time, and each run its own hard deadline from its start: a run
 * that has to be killed takes no other with it, and the queue goes on in a fresh worker.
 * Falls back to the calling thread when the compiled worker file is not found (running from
 * TypeScript sources without a build).
 */
export async function runSandboxed(code: string, options: SandboxOptions = {}): Promise<SandboxResult> {
    const file = workerFile();
    if (file == null)
        return runSandboxedInline(code, options);
    return new Promise<SandboxResult>((resolve) => {
        queue.push({ code, options, resolve });
        startNext(file);
    });
}

function startNext(file: string): void {
    if (running != null)
        return;
    const job = queue.shift();
    if (job == null)
        return;
    const current = startWorker(file);
    const timeoutMs = job.options.timeoutMs ?? 1000;
    const id = nextId++;
    const timer = setTimeout(() => {
        if (worker === current)
            worker = undefined;
        void current.terminate();
        finishRunning(id, { ok: false, output: "", failure: "timeout", error: `time limit of ${timeoutMs} ms exceeded` });
    }, timeoutMs + GRACE_MS);
    running = { ...job, id, timer };
    current.postMessage({ id, code: job.code, options: job.options });
}

/** Settles the running job (when `id` is still the one running) and starts the next. */
function finishRunning(id: number, result: SandboxResult): void {
    if (running == null || running.id !== id)
        return;
    const job = running;
    running = undefined;
    clearTimeout(job.timer);
    job.resolve(result);
    const file = workerFile();
    if (file != null)
        startNext(file);
}

function startWorker(file: string): Worker {
    if (worker != null)
        return worker;
    const created = new Worker(file);
    created.on("message", (message: { id: number; result: SandboxResult }) => finishRunning(message.id, message.result));
    created.on("error", (error) => {
        if (worker === created)
            worker = undefined;
        if (running != null)
            finishRunning(running.id, { ok: false, output: "", failure: "error", error: `sandbox failure: ${error.message}` });
    });
    created.on("exit", () => {
        if (worker === created)
            worker = undefined;
    });
    // After the listeners: attaching a "message" listener refs the port again.
    created.unref();
    worker = created;
    return created;
}

let resolvedWorkerFile: string | null | undefined;

function workerFile(): string | null {
    if (resolvedWorkerFile !== undefined)
        return resolvedWorkerFile;
    const beside = fileURLToPath(new URL("./sandbox-worker.js", import.meta.url));
    const built = path.join(packageRoot, "dist", "src", "tools", "sandbox-worker.js");
    resolvedWorkerFile = fs.existsSync(beside) ? beside : fs.existsSync(built) ? built : null;
    return resolvedWorkerFile;
}

/** Stops the sandbox worker (tests; a process that wants to exit promptly). */
export async function closeSandbox(): Promise<void> {
    const current = worker;
    worker = undefined;
    const closed: SandboxResult = { ok: false, output: "", failure: "error", error: "the sandbox was closed" };
    for (const job of queue.splice(0))
        job.resolve(closed);
    if (running != null) {
        clearTimeout(running.timer);
        running.resolve(closed);
        running = undefined;
    }
    if (current != null)
        await current.terminate();
}
