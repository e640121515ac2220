import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { defaultThreadCount } from "../llm/cpu.js";
import { InputError, RuntimeFailure } from "../util/errors.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { packageRoot } from "../util/package.js";

/**
 * Builds the native trainer (`autoact-train`), llama.cpp's own `llama-bench` and
 * `llama-server` (the remote backend's test server and `autoact deploy`'s) from the llama.cpp source node-llama-cpp ships as a git bundle: clone it into native/build, apply
 * native/patches/*.patch, configure native/CMakeLists.txt, and build only the targets needed.
 * Incremental: the patched clone is kept while its stamp (tag + bundle size + patch hashes)
 * matches, and ninja rebuilds only what changed.
 */
export const nativeBackends = ["cpu", "cuda", "vulkan", "metal"] as const;
export type NativeBackend = (typeof nativeBackends)[number];

export interface NativeBuildProgress {
    phase: "clone" | "patch" | "configure" | "build" | "ready";
    message: string;
    /** Build steps done and total (phase "build"). */
    done?: number;
    total?: number;
}

export interface NativeBuildOptions {
    /** Compute backend compiled into ggml. Defaults to "cpu". */
    backend?: NativeBackend;
    /** Called with each phase and with ninja's step counter. Defaults to none. */
    onProgress?: (progress: NativeBuildProgress) => void;
    /** Parallel compile jobs. Defaults to the physical core count. */
    jobs?: number;
    /** Re-clone and re-patch even when the stamp matches. Defaults to false. */
    force?: boolean;
    /** Folder holding the clone and the build folders. Defaults to <package>/native/build. */
    buildRoot?: string;
    /** Binaries to carry to another machine (nativeConfigureFlags). Defaults to false: this CPU's own instructions. */
    portable?: boolean;
}

export interface NativeBuild {
    /** The trainer executable. */
    trainer: string;
    /** llama.cpp's llama-bench, built from the same (patched) source. */
    llamaBench: string;
    /** llama.cpp's llama-server, from the same source. */
    llamaServer: string;
    /** The CPU kernels autoact's patches change, against a double-precision reference (native/check). */
    kernelCheck: string;
    /** The CMake build folder of this backend. */
    buildDir: string;
    /** llama.cpp tag of the bundle. */
    llamaTag: string;
    /** Seconds the call took. */
    seconds: number;
}

// by its real path: checkouts that link one native/ (worktrees) configure and build it in one place
const nativeDir = fs.realpathSync(path.join(packageRoot, "native"));
const bundleDir = path.join(packageRoot, "node_modules", "node-llama-cpp", "llama");

export async function ensureNativeBuild(options: NativeBuildOptions = {}): Promise<NativeBuild> {
    const {
        backend = "cpu", onProgress = () => {}, jobs = defaultThreadCount(), force = false,
        buildRoot = path.join(nativeDir, "build"), portable = false
    } = options;
    const started = performance.now();
    if (!(nativeBackends as readonly string[]).includes(backend))
        throw new InputError(`unknown backend "${backend}" (expected ${nativeBackends.join(", ")})`);
    const tools = await findTools(backend);

    const source = path.join(buildRoot, "llama.cpp");
    const llamaTag = await preparePatchedSource(source, force, onProgress);

    const buildDir = path.join(buildRoot, backend);
    await configure(buildDir, source, nativeConfigureFlags(backend, portable), tools, onProgress);

    const targets = nativeTargets.map((t) => t.target);
    onProgress({ phase: "build", message: `building ${targets.join(", ")} (${backend}, ${jobs} jobs)` });
    const args = tools.ninja
        ? ["-C", buildDir, "-j", String(jobs), ...targets]
        : ["--build", buildDir, "--parallel", String(jobs), "--target", ...targets];
    // ccache keys on paths relative to the package, so checkouts at other paths share the cache
    const env = { CCACHE_BASEDIR: packageRoot, CCACHE_NOHASHDIR: "1" };
    const child = execa(tools.ninja ? "ninja" : "cmake", args, { all: true, reject: false, buffer: { all: true }, env });
    child.all?.on("data", (chunk: Buffer) => {
        for (const match of chunk.toString().matchAll(/\[(\d+)\/(\d+)\]\s*(.*)/g))
            onProgress({ phase: "build", message: match[3]!.trim(), done: Number(match[1]), total: Number(match[2]) });
    });
    const result = await child;
    if (result.exitCode !== 0)
        throw new RuntimeFailure(`native build failed in ${buildDir} (exit ${result.exitCode}): ${lastLines(String(result.all ?? ""), 15)}`);

    const build: NativeBuild = { ...binaries(path.join(buildDir, "bin")), buildDir, llamaTag, seconds: (performance.now() - started) / 1000 };
    for (const file of nativeTargets.map((t) => build[t.field])) {
        if (!fs.existsSync(file))
            throw new RuntimeFailure(`native build finished but ${file} is missing`);
    }
    onProgress({ phase: "ready", message: `native build ready in ${build.seconds.toFixed(1)} s` });
    return build;
}

/** The build's targets and the NativeBuild field of each executable. */
const nativeTargets = [
    { target: "autoact-train", field: "trainer" },
    { target: "llama-bench", field: "llamaBench" },
    { target: "llama-server", field: "llamaServer" },
    { target: "autoact-kernel-check", field: "kernelCheck" }
] as const;

type Binaries = Pick<NativeBuild, (typeof nativeTargets)[number]["field"]>;

function binaries(bin: string): Binaries {
    const exe = process.platform === "win32" ? ".exe" : "";
    return Object.fromEntries(nativeTargets.map((t) => [t.field, path.join(bin, `${t.target}${exe}`)])) as unknown as Binaries;
}

/**
 * Where a previous build put the binaries, without building; null when any of `need` (default:
 * all) is absent, as in a prebuilt set carried to another machine without llama-server.
 */
export function findNativeBuild(backend: NativeBackend = "cpu", need: readonly (keyof Binaries)[] = nativeTargets.map((t) => t.field),
    buildRoot = path.join(nativeDir, "build")): Binaries | null {
    const found = binaries(path.join(buildRoot, backend, "bin"));
    return need.every((field) => fs.existsSync(found[field])) ? found : null;
}

interface Tools {
    ninja: boolean;
    ccache: boolean;
}

async function findTools(backend: NativeBackend): Promise<Tools> {
    if (!(await which("cmake")))
        throw new RuntimeFailure("cmake not found: install it (Debian: apt-get install cmake ninja-build ccache)");
    if (!(await which("git")))
        throw new RuntimeFailure("git not found: it is needed to clone llama.cpp's source bundle");
    if (backend === "cuda" && !(await which("nvcc")) && !fs.existsSync("/usr/local/cuda/bin/nvcc"))
        throw new InputError("--backend cuda: the CUDA toolkit (nvcc) is not installed");
    if (backend === "vulkan" && !(await which("glslc")))
        throw new InputError("--backend vulkan: the Vulkan SDK (glslc) is not installed");
    if (backend === "metal" && process.platform !== "darwin")
        throw new InputError("--backend metal: Metal exists only on macOS");
    return { ninja: await which("ninja"), ccache: await which("ccache") };
}

async function which(command: string): Promise<boolean> {
    const result = await execa(command, ["--version"], { reject: false, stdin: "ignore" }).catch(() => null);
    return result != null && result.exitCode === 0;
}

/** What the native build's llama.cpp clone is: the bundle's tag and size, and the patches applied to it. */
export interface SourceStamp {
    tag: string;
    bundleBytes: number;
    patches: { name: string; sha256: string }[];
}

/** The stamp of the native build's source, or null where nothing was built. */
export function nativeSourceStamp(buildRoot = path.join(nativeDir, "build")): SourceStamp | null {
    try {
        return JSON.parse(fs.readFileSync(`${path.join(buildRoot, "llama.cpp")}.stamp.json`, "utf8")) as SourceStamp;
    } catch {
        return null;
    }
}

/** The patches a native build's executable was built with; null for an executable from elsewhere (or no stamp). */
export function nativeBuildPatches(executable: string, buildRoot = path.join(nativeDir, "build")): string[] | null {
    if (!path.resolve(executable).startsWith(path.resolve(buildRoot) + path.sep))
        return null;
    return nativeSourceStamp(buildRoot)?.patches.map((p) => p.name) ?? null;
}

/** Clones and patches the bundle unless the stamp says the clone is already that. */
async function preparePatchedSource(source: string, force: boolean, onProgress: (p: NativeBuildProgress) => void): Promise<string> {
    const bundle = path.join(bundleDir, "gitRelease.bundle");
    const infoFile = path.join(bundleDir, "llama.cpp.info.json");
    if (!fs.existsSync(bundle))
        throw new RuntimeFailure(`llama.cpp source bundle not found: ${bundle} (is node-llama-cpp installed?)`);
    const tag = (JSON.parse(fs.readFileSync(infoFile, "utf8")) as { tag: string }).tag;
    const patchDir = path.join(nativeDir, "patches");
    const patches = fs.readdirSync(patchDir).filter((name) => name.endsWith(".patch")).sort()
        .map((name) => ({ name, sha256: crypto.createHash("sha256").update(fs.readFileSync(path.join(patchDir, name))).digest("hex") }));
    const stamp: SourceStamp = { tag, bundleBytes: fs.statSync(bundle).size, patches };
    const stampFile = `${source}.stamp.json`;
    const current = fs.existsSync(stampFile) ? fs.readFileSync(stampFile, "utf8") : "";
    if (!force && current === JSON.stringify(stamp) && fs.existsSync(path.join(source, "CMakeLists.txt")))
        return tag;

    onProgress({ phase: "clone", message: `cloning llama.cpp ${tag} from node-llama-cpp's bundle` });
    fs.rmSync(stampFile, { force: true });
    fs.rmSync(source, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(source), { recursive: true });
    await run("git", ["clone", "--quiet", bundle, source]);
    for (const patch of patches) {
        onProgress({ phase: "patch", message: `applying ${patch.name}` });
        await run("git", ["-C", source, "apply", "--whitespace=nowarn", path.join(patchDir, patch.name)]);
    }
    writeFileAtomicSync(stampFile, JSON.stringify(stamp));
    return tag;
}

/**
 * ggml's CMake flags for a backend. A portable build (`autoact native build --portable`, for
 * bench/gpu/pack.sh) runs on another machine: x86-64 code for AVX2 (any x86 GPU host has it)
 * instead of this CPU's own instructions, which the other CPU may lack; with CUDA, without the
 * flash-attention kernels, a third of a cold CUDA build, which the trainer and the training
 * benchmark's llama-bench do not use.
 */
export function nativeConfigureFlags(backend: NativeBackend, portable: boolean): string[] {
    const x86 = process.arch === "x64" || process.arch === "ia32";
    return [
        `-DGGML_NATIVE=${portable ? "OFF" : "ON"}`,
        ...(portable && x86 ? ["-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DGGML_BMI2=ON"] : []),
        `-DGGML_CUDA=${backend === "cuda" ? "ON" : "OFF"}`,
        ...(backend === "cuda" ? [`-DGGML_CUDA_FA=${portable ? "OFF" : "ON"}`] : []), // both ways: CMake's cache keeps the last
        `-DGGML_VULKAN=${backend === "vulkan" ? "ON" : "OFF"}`,
        `-DGGML_METAL=${backend === "metal" ? "ON" : "OFF"}`
    ];
}

async function configure(buildDir: string, source: string, flags: string[], tools: Tools, onProgress: (p: NativeBuildProgress) => void): Promise<void> {
    const args = [
        "-S", nativeDir, "-B", buildDir,
        ...(tools.ninja ? ["-G", "Ninja"] : []),
        "-DCMAKE_BUILD_TYPE=Release",
        `-DAUTOACT_LLAMA_SRC=${source}`,
        `-DGGML_CCACHE=${tools.ccache ? "ON" : "OFF"}`,
        ...flags
    ];
    // Re-run CMake only when its arguments changed (CMake itself notices edited CMakeLists).
    const stampFile = path.join(buildDir, "autoact-configure.json");
    const generated = path.join(buildDir, tools.ninja ? "build.ninja" : "Makefile");
    // A build folder configured for a checkout at another path (moved, or copied with it): CMake
    // refuses a new source over its cache, and its build files name the old path.
    const cache = path.join(buildDir, "CMakeCache.txt");
    const cached = fs.existsSync(cache) ? fs.readFileSync(cache, "utf8") : "";
    const cachedPath = (key: string) => new RegExp(`^${key}:INTERNAL=(.*)$`, "m").exec(cached)?.[1];
    const moved = cached !== "" && (cachedPath("CMAKE_HOME_DIRECTORY") !== nativeDir || cachedPath("CMAKE_CACHEFILE_DIR") !== path.resolve(buildDir));
    if (!moved && fs.existsSync(generated) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === JSON.stringify(args))
        return;
    onProgress({ phase: "configure", message: `configuring the build in ${buildDir}` });
    if (moved) {
        for (const stale of [cache, path.join(buildDir, "CMakeFiles")])
            fs.rmSync(stale, { recursive: true, force: true });
    }
    fs.mkdirSync(buildDir, { recursive: true });
    await run("cmake", args);
    writeFileAtomicSync(stampFile, JSON.stringify(args));
}

async function run(command: string, args: string[]): Promise<void> {
    const result = await execa(command, args, { all: true, reject: false, stdin: "ignore" });
    if (result.exitCode !== 0)
        throw new RuntimeFailure(`${command} ${args.slice(0, 3).join(" ")} ... failed (exit ${result.exitCode}): ${lastLines(String(result.all ?? ""), 15)}`);
}

function lastLines(text: string, n: number): string {
    return text.trim().split("\n").slice(-n).join("\n");
}
