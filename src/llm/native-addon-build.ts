import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { RuntimeFailure, errorMessage } from "../util/errors.js";
import { packageRoot } from "../util/package.js";
import { engineHelperPath, engineHelperVersion, nodeLlamaCppVersion } from "./native-access.js";

export interface BuildEngineHelperOptions {
    /** Where to write the addon. Defaults to `engineHelperPath()` (the autoact cache folder). */
    out?: string;
    /** C++ compiler. Defaults to $CXX, else `c++`. */
    compiler?: string;
    /** Rebuild even when the addon is up to date. Defaults to false. */
    force?: boolean;
    /** Progress lines (the compiler command). Defaults to none. */
    log?: (line: string) => void;
}

export interface BuildEngineHelperResult {
    file: string;
    /** False when an up-to-date build was already there. */
    built: boolean;
    seconds: number;
}

const source = path.join(packageRoot, "src", "llm", "native", "engine-helper.cpp");

/**
 * Compiles autoact's engine helper (src/llm/native/engine-helper.cpp, ~2 s) against the
 * llama.cpp libraries of node-llama-cpp's prebuilt CPU binary and the llama.cpp headers of the
 * source bundle shipped in the node-llama-cpp package (same release): no llama.cpp build, no
 * network. Needs a C++17 compiler, git (to read the bundle) and Node's headers
 * (`<node prefix>/include/node`, part of the official Node builds).
 * Linux x64 / arm64 only; elsewhere the engine runs without the helper.
 */
export function buildEngineHelper(options: BuildEngineHelperOptions = {}): BuildEngineHelperResult {
    const started = performance.now();
    const out = path.resolve(options.out ?? engineHelperPath());
    const inputs = locateInputs();
    const stamp = JSON.stringify({ source: fs.statSync(source).mtimeMs, version: engineHelperVersion, bins: inputs.binsDir, nodeLlamaCpp: nodeLlamaCppVersion() });
    const stampFile = `${out}.stamp`;
    if (options.force !== true && fs.existsSync(out) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === stamp)
        return { file: out, built: false, seconds: 0 };

    fs.mkdirSync(path.dirname(out), { recursive: true });
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-engine-helper-"));
    try {
        const headers = extractLlamaHeaders(inputs.bundle, work);
        const tmpOut = path.join(path.dirname(out), `.engine-helper-${process.pid}-${Date.now()}.node`);
        const compiler = options.compiler ?? process.env.CXX ?? "c++";
        const args = [
            "-std=c++17", "-O2", "-fPIC", "-shared", "-fexceptions", "-fvisibility=hidden",
            "-DNAPI_VERSION=7", "-DNAPI_CPP_EXCEPTIONS", `-DAUTOACT_ENGINE_HELPER_VERSION=${engineHelperVersion}`, "-DNODE_GYP_MODULE_NAME=autoact_engine_helper",
            `-I${inputs.nodeInclude}`, `-I${inputs.addonApi}`, `-I${inputs.addonSource}`,
            `-I${path.join(headers, "include")}`, `-I${path.join(headers, "ggml", "include")}`,
            source, "-o", tmpOut,
            `-L${inputs.binsDir}`, ...inputs.libs.map((lib) => `-l:${lib}`),
            `-Wl,-rpath,${inputs.binsDir}`
        ];
        options.log?.(`${compiler} ${args.join(" ")}`);
        try {
            execFileSync(compiler, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
        } catch (error) {
            const stderr = (error as { stderr?: string }).stderr ?? "";
            throw new RuntimeFailure(`compiling ${source} with ${compiler} failed: ${stderr.trim().split("\n")[0] || errorMessage(error).split("\n")[0]}`);
        }
        fs.renameSync(tmpOut, out);
        fs.writeFileSync(stampFile, stamp);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
    return { file: out, built: true, seconds: (performance.now() - started) / 1000 };
}

interface Inputs {
    bundle: string;
    binsDir: string;
    libs: string[];
    nodeInclude: string;
    addonApi: string;
    addonSource: string;
}

function locateInputs(): Inputs {
    if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64"))
        throw new RuntimeFailure(`the engine helper is built for Linux x64/arm64 only (this is ${process.platform}-${process.arch})`);
    const require = createRequire(import.meta.url);
    const nlcDir = path.resolve(path.dirname(require.resolve("node-llama-cpp")), "..");
    const nlcRequire = createRequire(path.join(nlcDir, "package.json"));
    const prebuilt = `@node-llama-cpp/linux-${process.arch}`;
    let binsDir: string;
    try {
        binsDir = path.join(path.dirname(nlcRequire.resolve(prebuilt)), "..", "bins", `linux-${process.arch}`);
    } catch {
        throw new RuntimeFailure(`node-llama-cpp's prebuilt binary package ${prebuilt} is not installed (run npm ci)`);
    }
    const files = fs.existsSync(binsDir) ? fs.readdirSync(binsDir) : [];
    const pick = (pattern: RegExp, what: string) => {
        const found = files.find((f) => pattern.test(f));
        if (found == null)
            throw new RuntimeFailure(`no ${what} in ${binsDir}`);
        return found;
    };
    // The addon itself too: the helper calls node-llama-cpp's own sampler (AddonSampler::sample).
    const libs = [pick(/^llama-addon\.node$/, "llama-addon.node"), pick(/^libllama\..*so$|^libllama\.so$/, "libllama"),
        pick(/^libggml\..*so$|^libggml\.so$/, "libggml"), pick(/^libggml-base.*\.so$/, "libggml-base")];
    const bundle = path.join(nlcDir, "llama", "gitRelease.bundle");
    if (!fs.existsSync(bundle))
        throw new RuntimeFailure(`node-llama-cpp's llama.cpp source bundle is missing: ${bundle}`);
    const nodeInclude = path.resolve(path.dirname(process.execPath), "..", "include", "node");
    if (!fs.existsSync(path.join(nodeInclude, "node_api.h")))
        throw new RuntimeFailure(`Node's headers are missing (${path.join(nodeInclude, "node_api.h")}); install a Node build that ships include/node`);
    let addonApi: string;
    try {
        addonApi = path.dirname(nlcRequire.resolve("node-addon-api/package.json"));
    } catch {
        throw new RuntimeFailure("node-addon-api (a node-llama-cpp dependency) is not installed (run npm ci)");
    }
    const addonSource = path.join(nlcDir, "llama", "addon");
    if (!fs.existsSync(path.join(addonSource, "AddonContext.h")))
        throw new RuntimeFailure(`node-llama-cpp's addon headers are missing: ${addonSource}`);
    return { bundle, binsDir, libs, nodeInclude, addonApi, addonSource };
}

/** llama.h and ggml's headers of the bundled release, read from the git bundle (about 1 s). */
function extractLlamaHeaders(bundle: string, work: string): string {
    const gitDir = path.join(work, "bundle.git");
    const headers = path.join(work, "headers");
    fs.mkdirSync(headers);
    try {
        execFileSync("git", ["init", "-q", "--bare", gitDir], { stdio: "ignore" });
        execFileSync("git", [`--git-dir=${gitDir}`, "fetch", "-q", bundle, "HEAD"], { stdio: "ignore" });
        const tar = execFileSync("git", [`--git-dir=${gitDir}`, "archive", "FETCH_HEAD", "include", "ggml/include"], { maxBuffer: 64 * 2 ** 20 });
        execFileSync("tar", ["-x", "-C", headers], { input: tar, stdio: ["pipe", "ignore", "pipe"] });
    } catch (error) {
        throw new RuntimeFailure(`cannot read llama.cpp headers from ${bundle} (needs git and tar): ${errorMessage(error).split("\n")[0]}`);
    }
    return headers;
}
