import fs from "node:fs";
import os from "node:os";

/**
 * Physical CPU cores (not hyper-threads): llama.cpp's math threads spin on shared cores,
 * so one thread per physical core is the fastest choice on CPU.
 */
export function physicalCoreCount(): number {
    try {
        const text = fs.readFileSync("/proc/cpuinfo", "utf8");
        const cores = new Set<string>();
        let physicalId = "0";
        for (const line of text.split("\n")) {
            const [key, value] = line.split(":").map((s) => s?.trim());
            if (key === "physical id")
                physicalId = value ?? "0";
            else if (key === "core id")
                cores.add(`${physicalId}:${value}`);
        }
        if (cores.size > 0)
            return cores.size;
    } catch {
        // not Linux: fall through
    }
    const logical = os.availableParallelism?.() ?? os.cpus().length;
    // Apple silicon and most desktop x86 parts without /proc: assume 2-way SMT only on x86.
    return Math.max(1, process.arch === "x64" && logical >= 4 ? Math.floor(logical / 2) : logical);
}
