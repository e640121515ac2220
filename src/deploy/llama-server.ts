import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { InputError, RuntimeFailure } from "../util/errors.js";

export interface LlamaServerOptions {
    /** The llama-server executable (`autoact native build` builds one). */
    binary: string;
    /** The base GGUF. */
    model: string;
    /** LoRA adapters loaded at start, not applied: requests pick theirs (`lora` field). Defaults to none. */
    adapters?: string[];
    /** Defaults to 127.0.0.1. */
    host?: string;
    /** Defaults to 8080. */
    port?: number;
    /** Server slots (requests decoded together). Defaults to 4. */
    parallel?: number;
    /** Tokens per slot. Defaults to 4096. */
    contextSize?: number;
    /** CPU threads. Defaults to llama-server's own choice. */
    threads?: number;
}

/**
 * llama-server's command line serving a base with the sub-agents' adapters: each adapter is
 * loaded once at scale 0 (`--lora-scaled FILE:0,...`), so a request without `lora` is the base
 * model (llama-server gives such a request every adapter at its load scale) and a request with
 * `lora: [{id, scale: 1}]` is that sub-agent. `autoact deploy` writes it; the remote backend's
 * tests run it.
 */
export function llamaServerArgs(options: LlamaServerOptions): string[] {
    const parallel = options.parallel ?? 4;
    const args = [
        "--model", path.resolve(options.model),
        "--host", options.host ?? "127.0.0.1",
        "--port", String(options.port ?? 8080),
        "--parallel", String(parallel),
        // llama-server's --ctx-size is the total of all slots
        "--ctx-size", String((options.contextSize ?? 4096) * parallel),
        "--no-webui"
    ];
    if (options.threads != null)
        args.push("--threads", String(options.threads), "--threads-batch", String(options.threads));
    const adapters = (options.adapters ?? []).map((adapter) => path.resolve(adapter));
    if (adapters.length > 0)
        args.push("--lora-scaled", loadedUnapplied(adapters));
    return args;
}

/** `--lora-scaled`'s value loading each adapter at scale 0: requests apply theirs. */
export function loadedUnapplied(adapters: string[]): string {
    return adapters.map((file) => csvItem(`${file}:0`)).join(",");
}

/** One item of llama.cpp's comma-separated list (quoted when it holds a comma or a quote); a path with ":" cannot be one. */
function csvItem(item: string): string {
    if (item.split(":").length !== 2)
        throw new InputError(`${item.slice(0, item.lastIndexOf(":"))}: llama-server cannot load an adapter whose path has ":" in it (it reads FILE:SCALE); move it`);
    return /[",]/.test(item) ? `"${item.replace(/"/g, '""')}"` : item;
}

export interface RunningServer {
    url: string;
    port: number;
    process: ChildProcess;
    /** Stops the server (SIGTERM, then SIGKILL after 5 s). */
    stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
    return await new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

/** Starts llama-server on 127.0.0.1 and waits until `/health` says it is ready. */
export async function startLlamaServer(options: Omit<LlamaServerOptions, "host"> & { readyTimeoutMs?: number }): Promise<RunningServer> {
    const port = options.port ?? await freePort();
    const child = spawn(options.binary, llamaServerArgs({ ...options, host: "127.0.0.1", port }), { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr!.on("data", (chunk: Buffer) => {
        log = (log + chunk.toString()).slice(-4000);
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // a process that exits without stopping it (an interrupt, an uncaught error) takes it along:
    // SIGKILL, since it cannot wait, and a busy llama-server finishes its requests on SIGTERM
    const killOnExit = () => child.kill("SIGKILL");
    process.on("exit", killOnExit);
    void exited.then(() => process.off("exit", killOnExit));
    const url = `http://127.0.0.1:${port}`;
    const stop = async () => {
        if (child.exitCode == null && child.signalCode == null) {
            child.kill("SIGTERM");
            const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
            await exited;
            clearTimeout(timer);
        }
    };
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
        if (child.exitCode != null || child.signalCode != null)
            throw new RuntimeFailure(`llama-server exited (${child.exitCode ?? child.signalCode}) before it was ready: ${log.trim().split("\n").slice(-3).join(" | ")}`);
        const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
        if (ok)
            return { url, port, process: child, stop };
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await stop();
    throw new RuntimeFailure(`llama-server on port ${port} was not ready within ${options.readyTimeoutMs ?? 60_000} ms: ${log.trim().split("\n").slice(-3).join(" | ")}`);
}
