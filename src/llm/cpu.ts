import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Reads a text file, undefined when it cannot (another OS, no such cgroup file). */
export type ReadText = (file: string) => string | undefined;

const readText: ReadText = (file) => {
    try {
        return fs.readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
};

/**
 * The default CPU thread count: the physical cores (not hyper-threads) this process may run
 * on, capped by its cgroup CPU quota. llama.cpp's math threads spin, so one thread per core
 * it really gets is the fastest choice; more threads than that (a taskset, a container's
 * --cpuset-cpus or --cpus, a Slurm allocation) make generation hundreds of times slower.
 */
export function defaultThreadCount(read: ReadText = readText): number {
    const cores = physicalCores(read("/proc/cpuinfo"), allowedCpus(read("/proc/self/status")));
    const quota = cgroupCpuLimit(read);
    return Math.max(1, quota == null ? cores : Math.min(cores, Math.ceil(quota)));
}

/** The machine's physical CPU cores, whatever this process may use (what a benchmark's machine label says). */
export function physicalCoreCount(read: ReadText = readText): number {
    return physicalCores(read("/proc/cpuinfo"), undefined);
}

/**
 * Physical cores among the `allowed` logical CPUs (all when undefined), from /proc/cpuinfo's
 * processor / physical id / core id lines; where it has no core ids (ARM) each CPU is a core.
 */
export function physicalCores(cpuinfo: string | undefined, allowed: Set<number> | undefined): number {
    if (cpuinfo == null)
        return fallbackCores();
    const cores = new Set<string>();
    let processors = 0;
    for (const block of cpuinfo.split(/\n\s*\n/)) {
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon > 0)
                fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        const processor = fields.get("processor");
        if (processor == null || !/^\d+$/.test(processor) || (allowed != null && !allowed.has(Number(processor))))
            continue;
        processors++;
        const core = fields.get("core id");
        if (core != null)
            cores.add(`${fields.get("physical id") ?? "0"}:${core}`);
    }
    if (processors === 0)
        return allowed?.size || fallbackCores();
    return cores.size > 0 ? cores.size : processors;
}

/** Not Linux: the CPUs Node says are usable, halved on x86 for 2-way SMT (Apple silicon has none). */
function fallbackCores(): number {
    const logical = os.availableParallelism?.() ?? os.cpus().length;
    return Math.max(1, process.arch === "x64" && logical >= 4 ? Math.floor(logical / 2) : logical);
}

/** The affinity mask from /proc/self/status ("Cpus_allowed_list: 0-3,8"), undefined when absent. */
export function allowedCpus(status: string | undefined): Set<number> | undefined {
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status ?? "")?.[1];
    if (list == null)
        return undefined;
    const cpus = new Set<number>();
    for (const range of list.split(",")) {
        const [first, last] = range.split("-").map(Number);
        for (let cpu = first!; cpu <= (last ?? first!); cpu++)
            cpus.add(cpu);
    }
    return cpus.size > 0 && ![...cpus].some(Number.isNaN) ? cpus : undefined;
}

/**
 * The CPUs a cgroup quota allows this process (1.5 = 150 ms per 100 ms), the lowest along its
 * cgroup and the cgroups above it; undefined when there is no quota. cgroup v2 reads cpu.max
 * ("150000 100000" or "max 100000"), v1 cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us.
 */
export function cgroupCpuLimit(read: ReadText = readText): number | undefined {
    let limit: number | undefined;
    const lower = (value: number | undefined) => {
        if (value != null && (limit == null || value < limit))
            limit = value;
    };
    for (const line of (read("/proc/self/cgroup") ?? "").split("\n")) {
        const [, controllers, cgroup] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
        if (cgroup == null)
            continue;
        if (controllers === "") {
            for (const dir of cgroupDirs("/sys/fs/cgroup", cgroup))
                lower(quotaV2(read(path.join(dir, "cpu.max"))));
        } else if (controllers!.split(",").includes("cpu")) {
            for (const mount of ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"])
                for (const dir of cgroupDirs(mount, cgroup))
                    lower(quotaV1(read(path.join(dir, "cpu.cfs_quota_us")), read(path.join(dir, "cpu.cfs_period_us"))));
        }
    }
    return limit;
}

/** The cgroup's folder under `mount` and each folder above it up to `mount` (in a container the mount is its own cgroup). */
function cgroupDirs(mount: string, cgroup: string): string[] {
    const dirs: string[] = [];
    for (let rel = path.posix.normalize(`/${cgroup}`); ; rel = path.posix.dirname(rel)) {
        dirs.push(path.posix.join(mount, rel));
        if (rel === "/")
            return dirs;
    }
}

/** cgroup v2 cpu.max: "QUOTA PERIOD" in microseconds, QUOTA "max" = no limit. */
export function quotaV2(text: string | undefined): number | undefined {
    const [quota, period] = (text ?? "").trim().split(/\s+/);
    return quotaOf(quota, period ?? "100000");
}

/** cgroup v1 cpu.cfs_quota_us (-1 = no limit) over cpu.cfs_period_us. */
export function quotaV1(quota: string | undefined, period: string | undefined): number | undefined {
    return quotaOf(quota?.trim(), period?.trim());
}

function quotaOf(quota: string | undefined, period: string | undefined): number | undefined {
    const q = Number(quota);
    const p = Number(period);
    return quota != null && /^\d+$/.test(quota) && q > 0 && p > 0 ? q / p : undefined;
}
