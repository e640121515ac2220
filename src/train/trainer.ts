import { execa } from "execa";
import { InputError, RuntimeFailure, UserError } from "../util/errors.js";
import { requireFile } from "../util/fs.js";
import { assertTrainOptions, trainOptionArgs, type TrainHyperParams } from "./options.js";

/** One `step` line of the trainer. */
export interface TrainStep {
    step: number;
    epoch: number;
    loss: number;
    eval_loss: number | null;
    lr: number;
    grad_norm: number;
    tokens: number;
    tokens_per_s: number;
    elapsed_s: number;
    eta_s: number;
    peak_rss_bytes: number;
}

/** The trainer's final `done` line. */
export interface TrainDone {
    adapter: string;
    steps: number;
    first_loss: number | null;
    loss: number | null;
    eval_loss: number | null;
    tokens_per_s: number;
    train_s: number;
    tokens: number;
    peak_rss_bytes: number;
    n_params: number;
    /** The scheduler's compute buffer of each backend (activations and temporaries), by name. */
    compute_buffer_bytes?: Record<string, number>;
    /** Frozen weights llama.cpp repacked for the CPU's own kernels (AMX tiles, interleaved blocks) for the forward pass. */
    repacked_weights?: number;
    /** Bytes of the base file that the weight copies made in each pass read again (their pages stay in memory). */
    weight_file_bytes?: number;
    /** How the input gradients through the frozen weights ran in the end: auto makes the copies in each pass where a training graph measured beside copies made once would not fit. */
    frozen_backward?: "cached" | "matmul" | "out_prod";
    /** Whether the backward pass recomputed activations in the end (auto turns it on where the memory is short). */
    recompute?: boolean;
    /** How many layers' activations it recomputed: auto takes the first layers, as many as the memory needs, before all of them. */
    recomputed_layers?: number;
}

export interface TrainStart {
    n_train: number;
    n_eval: number;
    n_skipped: number;
    n_params: number;
    total_steps: number;
    start_step: number;
    steps_per_epoch: number;
    arch: string;
    /** The adapter's shape: the options', or a given adapter's (adapterIn). */
    rank: number;
    alpha: number;
    targets: string[];
    threads: number;
    /** Tokens of one packed micro-batch. */
    batch_tokens: number;
    /** Tokens of one of its blocks: every sample lies within one, and attends only within it. */
    attention_block: number;
    warmup_steps: number;
    /** Whether the backward pass runs on 16-bit copies of the frozen weights. */
    mixed_precision: boolean;
    /** The type of those copies: "f32", "f16" (a GPU) or "bf16" (a CPU that multiplies BF16 natively). */
    input_grad_type: string;
    /** Whether the forward matmuls through F32/F16 weights read BF16 copies (mixed precision `on`, such a CPU). */
    forward_bf16: boolean;
    /** Whether the backward pass recomputes each layer's activations. */
    recompute: boolean;
    /** How the input gradients through the frozen weights run at first: copies made once ("cached"), in each pass ("matmul"), or "out_prod" (the done line says how they ran in the end). */
    frozen_backward: "cached" | "matmul" | "out_prod";
    /** The memory the trainer planned with (0: unknown). */
    memory_available_bytes: number;
    /** What the plan counts as held all along: the model file and the process's own state beside it (KV cache, adapter, gradients, moments, data). */
    memory_held_bytes?: number;
}

export interface TrainAdapterOptions extends TrainHyperParams {
    /** The autoact-train executable (from ensureNativeBuild). */
    trainer: string;
    /** Base model GGUF. */
    base: string;
    /** Samples file written by writeTrainingSamples. */
    samplesFile: string;
    /** Final adapter GGUF. */
    out: string;
    /** Sub-agent name recorded in the adapter. Defaults to "default". */
    agent?: string;
    /** An adapter GGUF to train further instead of a fresh one: its rank, alpha and targets are kept. Defaults to none. */
    adapterIn?: string;
    /** Checkpoint file. Defaults to `<out>.ckpt`. */
    checkpoint?: string;
    /** Continue from the checkpoint when it exists. Defaults to false. */
    resume?: boolean;
    /** CPU threads. Defaults to the trainer's choice (all hardware threads). */
    threads?: number;
    /** Layers offloaded to a GPU backend (-1 = all). Defaults to 0. */
    gpuLayers?: number;
    /** MiB of memory the trainer plans its weight copies and activations with. Defaults to what the machine has free at start. */
    memoryAvailableMib?: number;
    /** Each JSON event line as it arrives. Defaults to none. */
    onEvent?: (event: { event: string } & Record<string, unknown>) => void;
    /** Each step line. Defaults to none. */
    onStep?: (step: TrainStep) => void;
    /** The trainer's stderr lines (human logs). Defaults to none. */
    onLog?: (line: string) => void;
    /** Aborting sends SIGINT: the trainer checkpoints and stops. Defaults to none. */
    signal?: AbortSignal;
    /** Forward the parent's interrupt signals (interruptSignals) to the trainer (so it checkpoints). Defaults to true. */
    forwardSignals?: boolean;
    /** Extra raw flags for autoact-train. Defaults to none. */
    extraArgs?: string[];
}

export interface TrainAdapterResult {
    adapterPath: string;
    start: TrainStart | null;
    curve: TrainStep[];
    done: TrainDone;
}

/** Exit code of autoact-train and of `autoact train` when interrupted (checkpoint written). */
export const INTERRUPTED_EXIT_CODE = 130;

/** The trainer's flags for these options (without the executable): every option of the table, given or default. */
export function trainerArgs(options: TrainAdapterOptions): string[] {
    const args = ["--base", options.base, "--data", options.samplesFile, "--out", options.out];
    const add = (flag: string, value: string | number | undefined) => {
        if (value != null)
            args.push(flag, String(value));
    };
    add("--agent", options.agent);
    add("--checkpoint", options.checkpoint);
    add("--adapter-in", options.adapterIn);
    args.push(...trainOptionArgs(options, options.adapterIn));
    add("--threads", options.threads);
    add("--n-gpu-layers", options.gpuLayers);
    add("--memory-available", options.memoryAvailableMib);
    if (options.resume)
        args.push("--resume");
    args.push(...(options.extraArgs ?? []));
    return args;
}

let forwarding = 0;

/**
 * The signals that stop a command, with the exit code each ends it with: an interrupt, a
 * termination, a hang-up (a closed terminal, a lost ssh session). A running trainer takes each
 * (it checkpoints); otherwise the command stops with one line.
 */
export const interruptSignals = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/**
 * Whether a trainer is running that takes this process's interrupt signals (it checkpoints, then
 * `trainAdapter` throws an "interrupted" error): a command's own interrupt handling stands back.
 */
export function trainerTakesInterrupts(): boolean {
    return forwarding > 0;
}

/**
 * Runs autoact-train on one samples file and returns the curve and the final adapter. Progress
 * arrives through the callbacks as the trainer prints it. Errors: the trainer's own message, as
 * InputError (exit 2), RuntimeFailure (1, or 3 for a NaN loss) or, when interrupted, a UserError
 * with exit code 130 that says how to resume.
 */
export async function trainAdapter(options: TrainAdapterOptions): Promise<TrainAdapterResult> {
    requireFile(options.trainer, "trainer executable (run `autoact native build`)");
    assertTrainOptions(options);
    const child = execa(options.trainer, trainerArgs(options), {
        reject: false, stdin: "ignore", buffer: false, cancelSignal: undefined, forceKillAfterDelay: false
    });
    const curve: TrainStep[] = [];
    let start: TrainStart | null = null;
    let done: TrainDone | null = null;
    let errorEvent: { kind?: string; message?: string } | null = null;
    let interruptedAt: number | null = null;
    let checkpointAt: number | null = null;
    const stderrTail: string[] = [];

    const onInterrupt = () => {
        child.kill("SIGINT");
    };
    const forward = options.forwardSignals ?? true;
    if (forward) {
        for (const signal of Object.keys(interruptSignals))
            process.on(signal, onInterrupt);
        forwarding++;
    }
    options.signal?.addEventListener("abort", onInterrupt);

    const readLines = async (stream: NodeJS.ReadableStream | null, onLine: (line: string) => void) => {
        if (stream == null)
            return;
        let rest = "";
        for await (const chunk of stream) {
            rest += chunk.toString();
            let nl: number;
            while ((nl = rest.indexOf("\n")) >= 0) {
                onLine(rest.slice(0, nl));
                rest = rest.slice(nl + 1);
            }
        }
        if (rest !== "")
            onLine(rest);
    };

    // The exit status is judged after the streams, outside any `finally`, so no error masks another.
    let streamError: unknown = null;
    try {
        await Promise.all([
            readLines(child.stdout, (line) => {
                let event: { event: string } & Record<string, unknown>;
                try {
                    event = JSON.parse(line) as typeof event;
                } catch {
                    options.onLog?.(line);
                    return;
                }
                options.onEvent?.(event);
                if (event.event === "step") {
                    const step = event as unknown as TrainStep;
                    curve.push(step);
                    options.onStep?.(step);
                } else if (event.event === "start")
                    start = event as unknown as TrainStart;
                else if (event.event === "done")
                    done = event as unknown as TrainDone;
                else if (event.event === "error")
                    errorEvent = event as { kind?: string; message?: string };
                else if (event.event === "interrupted")
                    interruptedAt = Number(event.step);
                else if (event.event === "checkpoint")
                    checkpointAt = Number(event.step);
            }),
            readLines(child.stderr, (line) => {
                stderrTail.push(line);
                if (stderrTail.length > 20)
                    stderrTail.shift();
                options.onLog?.(line);
            })
        ]);
    } catch (error) {
        streamError = error;
    }
    const result = await child;
    if (forward) {
        for (const signal of Object.keys(interruptSignals))
            process.off(signal, onInterrupt);
        forwarding--;
    }
    options.signal?.removeEventListener("abort", onInterrupt);
    const exitCode = result.exitCode ?? (result.signal != null ? 128 : 1);
    const message = (errorEvent as { message?: string } | null)?.message ?? stderrTail.slice(-5).join(" / ");
    if (exitCode === INTERRUPTED_EXIT_CODE || interruptedAt != null) {
        throw new UserError(`training of ${options.out} interrupted after step ${interruptedAt ?? "?"}; ` +
            "the checkpoint is saved: run the same command again to continue from it", { exitCode: INTERRUPTED_EXIT_CODE });
    }
    if (exitCode === 2)
        throw new InputError(message);
    if (result.signal === "SIGKILL" && errorEvent == null) {
        // nothing in the trainer says why: on Linux it is most often the kernel's out-of-memory killer
        const kept = checkpointAt != null ? `its checkpoint of step ${checkpointAt} is kept: run the same command again to continue from it`
            : "no checkpoint was written yet";
        throw new RuntimeFailure(`autoact-train was killed (SIGKILL) after step ${curve.at(-1)?.step ?? 0}, most often by the kernel for want of memory ` +
            `(lower --batch-tokens or --ctx, or use --recompute on); ${kept}`);
    }
    if (exitCode !== 0 || done == null)
        throw new RuntimeFailure(`autoact-train failed (exit ${exitCode}${result.signal ? `, ${result.signal}` : ""}): ${message}`);
    // Reading the trainer's output failed while the trainer itself succeeded: that error, not a masked one.
    if (streamError != null)
        throw streamError;
    return { adapterPath: options.out, start, curve, done: done! };
}
