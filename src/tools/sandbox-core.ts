import { RELEASE_SYNC, newQuickJSWASMModuleFromVariant, newVariant, shouldInterruptAfterDeadline, type QuickJSWASMModule } from "quickjs-emscripten";

export interface SandboxOptions {
    /** Wall-clock limit for one run, enforced by QuickJS's interrupt handler. Defaults to 1000 ms. */
    timeoutMs?: number;
    /** Heap limit of the QuickJS runtime. Defaults to 32 MiB. */
    memoryBytes?: number;
    /** Stack limit of the QuickJS runtime (deep recursion). Defaults to 256 KiB. */
    stackBytes?: number;
    /** Output beyond this is cut, with a note. Defaults to 2000 characters. */
    maxOutputChars?: number;
}

export interface SandboxResult {
    ok: boolean;
    /** What console.log printed, then the value of the last expression when it is not undefined. */
    output: string;
    /** For failures: "timeout", "memory", "stack" or "error" (an exception thrown by the code). */
    failure?: "timeout" | "memory" | "stack" | "error";
    /** The thrown error as "Name: message". */
    error?: string;
}

/** The WASM heap QuickJS starts with (the module's declared initial memory). */
const BASE_HEAP_BYTES = 16 * 1024 * 1024;
const WASM_PAGE = 64 * 1024;

/**
 * A fresh WASM module per run, with a linear memory that cannot grow past the base heap plus
 * the run's limit. QuickJS's own malloc limit does not hold in this build (it counts block
 * sizes through malloc_usable_size, which Emscripten lacks, so `new Array(1e6)` is never
 * counted): the memory's maximum is the limit that does. A fresh module also returns a
 * grown heap to the system after each run.
 */
async function quickjs(memoryBytes: number): Promise<{ module: QuickJSWASMModule; exhausted: () => boolean }> {
    const maximumBytes = Math.ceil((BASE_HEAP_BYTES + memoryBytes) / WASM_PAGE) * WASM_PAGE;
    const wasmMemory = new (globalThis as unknown as WasmGlobal).WebAssembly.Memory({
        initial: BASE_HEAP_BYTES / WASM_PAGE,
        maximum: maximumBytes / WASM_PAGE
    });
    const module = await newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC, { wasmMemory: wasmMemory as never }));
    // A heap grown to within 1 MiB of its maximum says why a run failed, whatever was thrown.
    return { module, exhausted: () => wasmMemory.buffer.byteLength > maximumBytes - 1024 * 1024 };
}

/** The one WebAssembly constructor used here (the project's `lib` has no DOM/WebAssembly types). */
interface WasmGlobal {
    WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };
}

// How a value reads in the output (console.log's arguments and the last expression's value):
// JSON, except for what JSON would turn into null or refuse (NaN, Infinity, BigInt), and Maps and Sets.
const PRELUDE = `
globalThis.__show = (() => {
    const plain = (key, value) =>
        typeof value === "bigint" || (typeof value === "number" && !Number.isFinite(value)) ? String(value)
        : value instanceof Map ? Object.fromEntries(value) : value instanceof Set ? [...value] : value;
    return (value) => {
        if (typeof value === "string") return value;
        if (typeof value === "function") return "[Function " + (value.name || "anonymous") + "]";
        if (value === undefined) return "undefined";
        if (typeof value !== "object" || value === null) return String(value);
        try { const json = JSON.stringify(value, plain); return json === undefined ? String(value) : json; }
        catch (e) { return String(value); }
    };
})();
globalThis.console = (() => {
    const print = (...args) => __print(args.map(__show).join(" "));
    return { log: print, info: print, warn: print, error: print, debug: print };
})();
globalThis.print = console.log;
`;

/**
 * Runs untrusted JavaScript in a QuickJS WebAssembly sandbox on the calling thread: no file
 * system, no network, no host objects besides `console`; time, heap and stack limits. Never
 * throws for the code's own failures: they come back as `failure` and `error`.
 * QuickJS polls its interrupt handler only every few thousand bytecode steps, so code that
 * spends long in native built-ins can overrun `timeoutMs`; `runSandboxed` (sandbox.ts) runs
 * this on a worker thread with a hard deadline instead.
 */
export async function runSandboxedInline(code: string, options: SandboxOptions = {}): Promise<SandboxResult> {
    const { timeoutMs = 1000, memoryBytes = 32 * 1024 * 1024, stackBytes = 256 * 1024, maxOutputChars = 2000 } = options;
    const { module, exhausted } = await quickjs(memoryBytes);
    const runtime = module.newRuntime();
    const lines: string[] = [];
    let length = 0, truncated = false;
    const append = (text: string) => {
        if (truncated)
            return;
        if (length + text.length > maxOutputChars) {
            lines.push(text.slice(0, Math.max(0, maxOutputChars - length)));
            truncated = true;
            return;
        }
        lines.push(text);
        length += text.length + 1;
    };
    let result: SandboxResult;
    const deadline = Date.now() + timeoutMs;
    try {
        runtime.setMemoryLimit(memoryBytes);
        runtime.setMaxStackSize(stackBytes);
        runtime.setInterruptHandler(shouldInterruptAfterDeadline(deadline));
        const context = runtime.newContext();
        try {
            const printFn = context.newFunction("__print", (handle) => {
                append(context.getString(handle));
            });
            context.setProp(context.global, "__print", printFn);
            printFn.dispose();
            const prelude = context.evalCode(PRELUDE, "prelude.js");
            if (prelude.error != null) {
                prelude.error.dispose();
                throw new Error("sandbox prelude failed");
            }
            prelude.value.dispose();

            const evaluated = context.evalCode(code, "code.js");
            if (evaluated.error != null) {
                const error = describeError(context.dump(evaluated.error));
                disposeHandle(evaluated.error);
                result = failure(error, Date.now() >= deadline, timeoutMs, memoryBytes, exhausted());
            } else {
                const handle = evaluated.value;
                // Promise callbacks (then/await) run as pending jobs; a returned promise is awaited.
                const jobs = runtime.executePendingJobs();
                if (jobs.error != null) {
                    const error = describeError(context.dump(jobs.error));
                    disposeHandle(jobs.error);
                    result = failure(error, Date.now() >= deadline, timeoutMs, memoryBytes, exhausted());
                } else {
                    const state = context.getPromiseState(handle);
                    if (state.type === "rejected") {
                        const error = describeError(context.dump(state.error));
                        disposeHandle(state.error);
                        result = failure(error, Date.now() >= deadline, timeoutMs, memoryBytes, exhausted());
                    } else {
                        result = { ok: true, output: "" };
                        if (state.type === "fulfilled") {
                            if (context.typeof(state.value) !== "undefined") {
                                const show = context.getProp(context.global, "__show");
                                const shown = context.callFunction(show, context.undefined, state.value);
                                show.dispose();
                                if (shown.error != null) {
                                    result = failure(describeError(context.dump(shown.error)), Date.now() >= deadline, timeoutMs, memoryBytes, exhausted());
                                    disposeHandle(shown.error);
                                } else {
                                    append(context.getString(shown.value));
                                    shown.value.dispose();
                                }
                            }
                            if (state.value !== handle)
                                disposeHandle(state.value);
                        } else {
                            append("[a promise that never settled]");
                        }
                    }
                }
                disposeHandle(handle);
            }
        } finally {
            context.dispose();
        }
    } catch (error) {
        // A failure of the WASM module itself (the module is thrown away with this run).
        result = { ok: false, output: "", failure: "error", error: `sandbox failure: ${(error as Error).message}` };
    } finally {
        try {
            runtime.dispose();
        } catch {
            // a runtime that ran out of memory may fail to free itself: its module goes with it
        }
    }
    // A run past its deadline timed out, whatever it returned: QuickJS's interrupt can be caught
    // by the code's own try/catch, or land in a promise job nobody awaits.
    if (result.ok && Date.now() >= deadline)
        result = { ok: false, output: "", failure: "timeout", error: `time limit of ${timeoutMs} ms exceeded` };
    result.output = lines.join("\n") + (truncated ? `\n[output cut at ${maxOutputChars} characters]` : "");
    return result;
}

function disposeHandle(handle: { alive: boolean; dispose(): void }): void {
    if (handle.alive)
        handle.dispose();
}

function describeError(dumped: unknown): string {
    if (dumped != null && typeof dumped === "object") {
        const { name, message } = dumped as { name?: unknown; message?: unknown };
        if (typeof message === "string")
            return `${typeof name === "string" ? name : "Error"}: ${message}`;
    }
    return `Uncaught ${typeof dumped === "string" ? dumped : JSON.stringify(dumped)}`;
}

function failure(error: string, pastDeadline: boolean, timeoutMs: number, memoryBytes: number, heapExhausted: boolean): SandboxResult {
    if (/interrupted/i.test(error) && pastDeadline)
        return { ok: false, output: "", failure: "timeout", error: `time limit of ${timeoutMs} ms exceeded` };
    // QuickJS throws a bare null when it runs out of memory while building the error itself.
    const nullThrown = error === "Uncaught null";
    if (/out of memory/i.test(error) || /invalid (string|array) length/i.test(error) || heapExhausted || nullThrown)
        return { ok: false, output: "", failure: "memory", error: `memory limit of ${Math.round(memoryBytes / 1048576)} MiB exceeded (${error})` };
    if (/stack overflow/i.test(error))
        return { ok: false, output: "", failure: "stack", error: `stack limit exceeded (${error})` };
    return { ok: false, output: "", failure: "error", error };
}
