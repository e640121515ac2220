import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { readGgufInfo, ggufArchitecture, ggufFileType, ggufParameterCount, type GgufInfo } from "../gguf/reader.js";
import { ggmlTypeName } from "../gguf/types.js";
import { physicalCoreCount } from "../llm/cpu.js";
import { cachedSha256 } from "../util/file-hash.js";
import { packageRoot, packageVersion } from "../util/package.js";
import { nativeSourceStamp } from "../train/native-build.js";
import type { Fingerprint, ModelFingerprint } from "./result.js";

export interface GpuInfo {
    name: string;
    vram_bytes: number | null;
    driver: string | null;
}

/** The first NVIDIA GPU as nvidia-smi describes it; null without nvidia-smi or a GPU. */
export async function nvidiaGpu(): Promise<GpuInfo | null> {
    const result = await execa("nvidia-smi", ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
        { reject: false, stdin: "ignore", timeout: 15_000 }).catch(() => null);
    if (result == null || result.exitCode !== 0)
        return null;
    const first = String(result.stdout).trim().split("\n")[0];
    if (first == null || first === "")
        return null;
    const [name, mib, driver] = first.split(",").map((s) => s.trim());
    const vram = Number(mib);
    return { name: name ?? "NVIDIA GPU", vram_bytes: Number.isFinite(vram) ? vram * 2 ** 20 : null, driver: driver ?? null };
}

/** node-llama-cpp's version and the llama.cpp tag of the source it ships. */
export function softwareVersions(): { node_llama_cpp_version: string; llama_cpp_version: string } {
    const dir = path.join(packageRoot, "node_modules", "node-llama-cpp");
    const read = (file: string): Record<string, unknown> => {
        try {
            return JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Record<string, unknown>;
        } catch {
            return {};
        }
    };
    return {
        node_llama_cpp_version: String(read("package.json").version ?? "unknown"),
        llama_cpp_version: String(read("llama/llama.cpp.info.json").tag ?? "unknown")
    };
}

export async function modelFingerprint(file: string): Promise<ModelFingerprint> {
    const info = await readGgufInfo(file);
    return {
        file: path.resolve(file),
        name: path.basename(file),
        sha256: await cachedSha256(file),
        bytes: fs.statSync(file).size,
        arch: ggufArchitecture(info) ?? "unknown",
        // older GGUFs (stories260K) carry no general.file_type: name the weights' most common type
        type: ggufFileType(info)?.name ?? dominantTensorType(info),
        params: ggufParameterCount(info)
    };
}

function dominantTensorType(info: GgufInfo): string {
    const counts = new Map<string, number>();
    for (const t of info.tensors.filter((t) => t.dims.length >= 2))
        counts.set(ggmlTypeName(t.type), (counts.get(ggmlTypeName(t.type)) ?? 0) + t.dims.reduce((a, b) => a * b, 1));
    const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    return best == null ? "unknown" : `${best[0]} (tensors)`;
}

/** The checkout's HEAD and whether its tracked files differ from it; nulls outside a git checkout. */
export async function gitState(dir = packageRoot): Promise<{ git_commit: string | null; git_dirty: boolean | null }> {
    const git = async (...args: string[]) => {
        const run = await execa("git", ["-C", dir, ...args], { reject: false, stdin: "ignore", timeout: 15_000 }).catch(() => null);
        return run != null && run.exitCode === 0 ? String(run.stdout).trim() : null;
    };
    const commit = await git("rev-parse", "HEAD");
    if (commit == null)
        return { git_commit: null, git_dirty: null };
    const status = await git("status", "--porcelain", "--untracked-files=no");
    return { git_commit: commit, git_dirty: status == null ? null : status !== "" };
}

/** What code ran: autoact's version and checkout, and the native build's source stamp (tag and patches). */
export async function codeIdentity(): Promise<Pick<Fingerprint, "autoact_version" | "git_commit" | "git_dirty" | "native_build">> {
    const stamp = nativeSourceStamp();
    return {
        autoact_version: packageVersion(),
        ...(await gitState()),
        native_build: stamp == null ? null : { tag: stamp.tag, patches: stamp.patches }
    };
}

/** "AMD EPYC 2c", or the GPU's name when the run used one. */
export function machineLabel(cpu: string, cores: number, gpu: string | null, backend: string): string {
    if (gpu != null && backend !== "cpu")
        return gpu.replace(/^NVIDIA\s+/i, "NVIDIA ").replace(/\s+(80GB|141GB|HBM3e?|PCIe|SXM\d?)\b.*$/i, "").trim();
    const short = cpu.replace(/\((R|TM)\)/gi, "").replace(/\bCPU\b/g, "").replace(/\b\d+-Core Processor\b/i, "")
        .replace(/@.*$/, "").replace(/\s+/g, " ").trim();
    return `${short} ${cores}c`;
}

export interface FingerprintOptions {
    threads: number;
    backend: string;
    build: string;
    modelFile: string;
    /** GPU name, VRAM and driver when the backend found no NVIDIA GPU through nvidia-smi (Metal, Vulkan). Defaults to none. */
    gpuFallback?: GpuInfo | null;
    llamaCppCommit?: string | null;
}

export async function collectFingerprint(options: FingerprintOptions): Promise<Fingerprint> {
    const cpus = os.cpus();
    const cpu = cpus[0]?.model.trim() || `${os.arch()} CPU`;
    const cores = physicalCoreCount();
    const gpu = options.backend === "cpu" ? await nvidiaGpu() : (await nvidiaGpu()) ?? options.gpuFallback ?? null;
    return {
        machine: machineLabel(cpu, cores, gpu?.name ?? null, options.backend),
        hostname: os.hostname(),
        os: `${os.type()} ${os.release()} ${os.arch()}`,
        cpu,
        cores,
        logical_cpus: cpus.length,
        threads: options.threads,
        ram_bytes: os.totalmem(),
        gpu: gpu?.name ?? null,
        vram_bytes: gpu?.vram_bytes ?? null,
        driver: gpu?.driver ?? null,
        backend: options.backend,
        build: options.build,
        node_version: process.version,
        ...softwareVersions(),
        llama_cpp_commit: options.llamaCppCommit ?? null,
        model: await modelFingerprint(options.modelFile),
        ...(await codeIdentity())
    };
}

/** Setup (synthesizing a model, compiling llama-bench) longer than this gets the load when measuring started noted too. */
const setupNoteSeconds = 10;

/**
 * The machine's 1-minute load for a result: `before` is read when the command starts, before
 * its own setup loads the machine; call `measuring()` when setup is done and `finish()` at the end.
 */
export function watchLoad(): { before: number; measuring(): void; finish(): { load_avg: { before: number; after: number }; notes: string[] } } {
    const before = os.loadavg()[0]!;
    const started = Date.now();
    const notes: string[] = [];
    return {
        before,
        measuring() {
            const seconds = (Date.now() - started) / 1000;
            if (seconds > setupNoteSeconds)
                notes.push(`setup (model, native build) took ${seconds.toFixed(0)} s: the load was ${os.loadavg()[0]!.toFixed(2)} when measuring started (load_avg.before, ${before.toFixed(2)}, is the command's start).`);
        },
        finish() {
            if (before > 0.25 * os.cpus().length)
                notes.push(`machine load average was ${before.toFixed(2)} at the start (${os.cpus().length} CPUs): other work shared the cores, so timings are pessimistic and noisy.`);
            return { load_avg: { before, after: os.loadavg()[0]! }, notes };
        }
    };
}

/**
 * Peak GPU memory of one process, polled from nvidia-smi (no-op without it). Where nvidia-smi
 * lists no process of that pid (in a container its pids are the host's), the peak is the rise
 * of the first GPU's used memory over its level when the watch started: the whole card's, so it
 * holds for a machine that runs nothing else.
 */
export function watchGpuMemory(pid: () => number | undefined, intervalMs = 500): { peak(): number | null; stop(): Promise<number | null> } {
    let ownPeak: number | null = null;
    let baseline: number | null = null;
    let cardPeak: number | null = null;
    let stopped = false;
    const query = async (args: string[]): Promise<number[][] | null> => {
        const result = await execa("nvidia-smi", [...args, "--format=csv,noheader,nounits"], { reject: false, stdin: "ignore", timeout: 5_000 }).catch(() => null);
        if (result == null || result.exitCode !== 0)
            return null;
        return String(result.stdout).trim().split("\n").filter((l) => l !== "").map((l) => l.split(",").map((s) => Number(s.trim())));
    };
    const cardUsed = async () => {
        const mib = (await query(["--query-gpu=memory.used"]))?.[0]?.[0];
        return mib != null && Number.isFinite(mib) ? mib * 2 ** 20 : null;
    };
    const poll = async () => {
        baseline = await cardUsed();
        while (!stopped) {
            const id = pid();
            if (id != null) {
                const apps = await query(["--query-compute-apps=pid,used_memory"]);
                if (apps == null)
                    return;
                for (const [p, mib] of apps)
                    if (p === id && mib != null && Number.isFinite(mib))
                        ownPeak = Math.max(ownPeak ?? 0, mib * 2 ** 20);
                const used = await cardUsed();
                if (used != null)
                    cardPeak = Math.max(cardPeak ?? 0, used);
            }
            await new Promise((resolve) => setTimeout(resolve, intervalMs));
        }
    };
    const peak = () => ownPeak ?? (baseline != null && cardPeak != null && cardPeak > baseline ? cardPeak - baseline : null);
    const running = poll();
    return {
        peak,
        async stop() {
            stopped = true;
            await running;
            return peak();
        }
    };
}
