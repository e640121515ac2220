import path from "node:path";
import { execa } from "execa";
import type { GgufDecoderShape } from "../gguf/reader.js";
import { RuntimeFailure } from "../util/errors.js";
import { packageRoot } from "../util/package.js";
import { quoteArg } from "./llama-bench.js";
import type { BenchTest } from "./result.js";

/** The PyTorch LoRA reference: a measurement tool, never a dependency of autoact. */
export const torchScript = path.join(packageRoot, "bench", "reference", "torch_lora.py");

/** Exit code of torch_lora.py when torch is not importable. */
const NO_TORCH_EXIT = 3;

/** The PyTorch reference's types for its frozen weights and autocast (torch_lora.py --dtype). */
export const torchDtypes = ["f32", "bf16"] as const;
export type TorchDtype = (typeof torchDtypes)[number];

export interface TorchReferenceOptions {
    /** Python executable that imports torch (see findTorchPython). */
    python: string;
    shape: GgufDecoderShape;
    rank: number;
    alpha: number;
    dropout: number;
    targets: readonly string[];
    /** Tokens per sample. */
    ctx: number;
    /** Samples per step. */
    batch: number;
    steps: number;
    /** CPU threads (also on a GPU run: data and launch threads). */
    threads: number;
    device: "cpu" | "cuda";
    /** Frozen weights and autocast type (the benchmark's default: f32 on CPU, bf16 on a GPU). */
    dtype: TorchDtype;
    lr: number;
    seed: number;
}

/** What torch_lora.py prints. */
export interface TorchReport {
    torch: string;
    /** "plain" (the script's own LoRA module) or "peft <version>". */
    lora: string;
    device: string;
    dtype: string;
    threads: number;
    samples: number[];
    tokens_per_s: number;
    stddev: number;
    first_loss: number;
    last_loss: number;
    lora_params: number;
    peak_rss_bytes: number;
    peak_vram_bytes: number | null;
}

export interface TorchRun {
    command: string;
    report: TorchReport;
    test: BenchTest;
}

/**
 * The first Python that imports torch (with CUDA when `device` is cuda): `given`, else `python3`
 * on PATH, else /usr/bin/python3 (Debian's python3-torch lives there while a pyenv python3 may
 * shadow it), or why none does.
 */
export async function findTorchPython(device: "cpu" | "cuda", given?: string): Promise<{ python: string; version: string } | { skipped: string }> {
    const candidates = [...new Set(given != null ? [given] : ["python3", "/usr/bin/python3"])];
    const found: string[] = [];
    for (const python of candidates) {
        const probe = await execa(python, ["-c", "import torch; print(torch.__version__, torch.cuda.is_available())"], { reject: false, stdin: "ignore", timeout: 120_000 });
        if (probe.exitCode !== 0)
            continue;
        const [version = "?", cuda] = String(probe.stdout).trim().split(" ");
        if (device === "cpu" || cuda === "True")
            return { python, version };
        found.push(`${python} has torch ${version} without CUDA`);
    }
    return {
        skipped: `PyTorch reference skipped: ${found.length > 0 ? found.join("; ") : `no Python here imports torch (tried ${candidates.join(", ")}; on Debian: apt-get install python3-torch)`}`
    };
}

/** torch_lora.py's arguments for these options. */
export function torchReferenceArgs(o: TorchReferenceOptions): string[] {
    const s = o.shape;
    return [
        torchScript, "--n-embd", String(s.nEmbd), "--layers", String(s.layers), "--heads", String(s.heads), "--kv-heads", String(s.kvHeads),
        "--ff", String(s.ff), "--vocab", String(s.vocab), "--rope-theta", String(s.ropeTheta), "--norm-eps", String(s.normEps),
        ...(s.tiedEmbeddings ? ["--tied-embeddings"] : []), ...(s.qkvBias ? ["--qkv-bias"] : []),
        "--rank", String(o.rank), "--alpha", String(o.alpha), "--dropout", String(o.dropout), "--targets", o.targets.join(","),
        "--ctx", String(o.ctx), "--batch", String(o.batch), "--steps", String(o.steps), "--lr", String(o.lr),
        "--device", o.device, "--dtype", o.dtype, "--threads", String(o.threads), "--seed", String(o.seed)
    ];
}

/** Runs the reference; its per-step rates become a test of engine "pytorch". */
export async function runTorchReference(o: TorchReferenceOptions): Promise<TorchRun> {
    const args = torchReferenceArgs(o);
    const command = [o.python, ...args].map(quoteArg).join(" ");
    const run = await execa(o.python, args, { reject: false, stdin: "ignore" });
    const tail = String(run.stderr).trim().split("\n").slice(-3).join(" | ");
    if (run.exitCode === NO_TORCH_EXIT)
        throw new RuntimeFailure(`${o.python} cannot import torch: ${tail}`);
    const line = String(run.stdout).trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
    if (run.exitCode !== 0 || line == null)
        throw new RuntimeFailure(`PyTorch reference failed (exit ${run.exitCode}): ${tail}`);
    const report = JSON.parse(line) as TorchReport;
    return {
        command,
        report,
        test: {
            name: `train-r${o.rank}-ctx${o.ctx}`,
            engine: "pytorch",
            pp: o.ctx,
            tg: 0,
            parallel: 1,
            lora_adapters: 1,
            reps: report.samples.length,
            samples: report.samples,
            mean: report.tokens_per_s,
            stddev: report.stddev,
            unit: "tokens/s",
            peak_rss_bytes: report.peak_rss_bytes,
            peak_vram_bytes: report.peak_vram_bytes
        }
    };
}
