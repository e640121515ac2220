import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { packageRoot } from "../util/package.js";
import { runSandboxedInline, type SandboxOptions, type SandboxResult } from "./sandbox-core.js";

export { runSandboxedInline, type SandboxOptions, type SandboxResult } from "./sandbox-core.js";

/** Extra time the worker gets past `timeoutMs` (for QuickJS's own interrupt) before it is killed. */
const GRACE_MS = 500;

interface Pending {
    resolve: (result: SandboxResult) => void;
    timer: NodeJS.Timeout;
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

/**
 * Runs untrusted JavaScript in the QuickJS sandbox on a worker thread, so a run never blocks
 * the event loop (parallel sequences keep generating) and a run that overruns its time limit
 * (QuickJS cannot interrupt a long native built-in) is stopped by terminating the worker.
 * Runs queue on one worker. Falls back to the calling thread when the compiled worker file
 * is not found (running from TypeScript sources without a build).
 */
export async function runSandboxed(code: string, options: SandboxOptions = {}): Promise<SandboxResult> {
    const file = workerFile();
    if (file == null)
        return runSandboxedInline(code, options);
    const timeoutMs = options.timeoutMs ?? 1000;
    const current = startWorker(file);
    const id = nextId++;
    return new Promise<SandboxResult>((resolve) => {
        // Queued runs wait for earlier ones: the hard deadline counts from this run's turn only
        // approximately, so it allows every earlier queued run its full limit too.
        const queued = pending.size;
        const timer = setTimeout(() => {
            if (worker === current) {
                worker = undefined;
                void current.terminate();
            }
            failAll(current, id, timeoutMs);
        }, (timeoutMs + GRACE_MS) * (queued + 1));
        pending.set(id, { resolve, timer });
        current.postMessage({ id, code, options });
    });
}

function failAll(terminated: Worker, timedOut: number, timeoutMs: number): void {
    for (const [id, entry] of pending) {
        clearTimeout(entry.timer);
        pending.delete(id);
        entry.resolve(id === timedOut
            ? { ok: false, output: "", failure: "timeout", error: `time limit of ${timeoutMs} ms exceeded` }
            : { ok: false, output: "", failure: "error", error: "sandbox restarted while this run was queued; run it again" });
    }
    void terminated;
}

function startWorker(file: string): Worker {
    if (worker != null)
        return worker;
    const created = new Worker(file);
    created.on("message", (message: { id: number; result: SandboxResult }) => {
        const entry = pending.get(message.id);
        if (entry == null)
            return;
        clearTimeout(entry.timer);
        pending.delete(message.id);
        entry.resolve(message.result);
    });
    created.on("error", (error) => {
        if (worker === created)
            worker = undefined;
        for (const [id, entry] of pending) {
            clearTimeout(entry.timer);
            pending.delete(id);
            entry.resolve({ ok: false, output: "", failure: "error", error: `sandbox failure: ${error.message}` });
        }
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
    if (current != null)
        await current.terminate();
}
