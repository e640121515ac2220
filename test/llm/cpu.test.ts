import { spawnSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { allowedCpus, cgroupCpuLimit, defaultThreadCount, physicalCores, quotaV1, quotaV2 } from "../../src/llm/cpu.js";
import { packageRoot } from "../../src/util/package.js";

const taskset = spawnSync("taskset", ["--version"]).status === 0;

/** Four logical CPUs on two physical cores (2-way SMT). */
const smtCpuinfo = [0, 1, 2, 3].map((cpu) => `processor\t: ${cpu}\nphysical id\t: 0\ncore id\t\t: ${cpu % 2}\n`).join("\n");

describe("default thread count", () => {
    it.skipIf(!taskset)("counts only the CPUs of the affinity mask (taskset -c 0 gives 1)", () => {
        const cpu = pathToFileURL(path.join(packageRoot, "dist/src/llm/cpu.js")).href;
        const child = spawnSync("taskset", ["-c", "0", process.execPath, "--input-type=module", "-e",
            `import { defaultThreadCount } from ${JSON.stringify(cpu)}; console.log(defaultThreadCount());`], { encoding: "utf8" });
        expect(child.stderr).toBe("");
        expect(child.stdout.trim()).toBe("1");
    });

    it("counts physical cores among the allowed CPUs; ARM's cpuinfo has no core ids", () => {
        expect(physicalCores(smtCpuinfo, undefined)).toBe(2);
        expect(physicalCores(smtCpuinfo, new Set([0, 2]))).toBe(1);
        expect(physicalCores(smtCpuinfo, new Set([1, 2]))).toBe(2);
        expect(physicalCores("processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\nBogoMIPS\t: 50\n", new Set([1]))).toBe(1);
        expect(allowedCpus("Name:\tnode\nCpus_allowed:\t3\nCpus_allowed_list:\t0-2,5,7-8\n")).toEqual(new Set([0, 1, 2, 5, 7, 8]));
        expect(allowedCpus("Name:\tnode\n")).toBeUndefined();
    });

    it("reads cgroup v2 and v1 quotas", () => {
        expect(quotaV2("150000 100000\n")).toBe(1.5);
        expect(quotaV2("max 100000\n")).toBeUndefined();
        expect(quotaV2(undefined)).toBeUndefined();
        expect(quotaV1("200000\n", "100000\n")).toBe(2);
        expect(quotaV1("-1\n", "100000\n")).toBeUndefined();
        expect(quotaV1("50000", undefined)).toBeUndefined();
    });

    it("caps the physical cores by the lowest quota along the cgroup path, rounded up", () => {
        const files = (map: Record<string, string>) => (file: string) => map[file];
        const machine = { "/proc/cpuinfo": smtCpuinfo, "/proc/self/status": "Cpus_allowed_list:\t0-3\n" };
        // v2, quota on the parent: 1.5 CPUs -> 2 threads; a child without one changes nothing
        const v2 = files({ ...machine, "/proc/self/cgroup": "0::/job/step\n", "/sys/fs/cgroup/job/step/cpu.max": "max 100000\n", "/sys/fs/cgroup/job/cpu.max": "50000 100000\n" });
        expect(cgroupCpuLimit(v2)).toBe(0.5);
        expect(defaultThreadCount(v2)).toBe(1);
        // v1 in a container: the host path is not mounted, the container's cgroup is the mount itself
        const v1 = files({ ...machine, "/proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "150000\n", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n" });
        expect(cgroupCpuLimit(v1)).toBe(1.5);
        expect(defaultThreadCount(v1)).toBe(2);
        // no quota: the physical cores
        expect(defaultThreadCount(files({ ...machine, "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }))).toBe(2);
        // a quota above the cores leaves the cores
        expect(defaultThreadCount(files({ ...machine, "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "800000 100000\n" }))).toBe(2);
    });
});
