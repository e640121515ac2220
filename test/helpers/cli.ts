import path from "node:path";
import { spawn } from "node:child_process";
import { packageRoot } from "../../src/util/package.js";

export interface CliResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

export interface CliProcessOptions {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    /**
     * Sends `signal` to the CLI process alone (not its children) once its stderr matches `when`,
     * or, for a command that prints nothing meanwhile, once `when()` (polled) returns true.
     */
    interrupt?: { when: RegExp | (() => boolean); signal: NodeJS.Signals };
}

/** Runs the built CLI (`dist/`, made by `npm test`'s tsc step) as a user would. */
export function runCliProcess(args: string[], options: CliProcessOptions = {}): Promise<CliResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli/main.js"), ...args], {
            cwd: options.cwd ?? packageRoot,
            env: { ...process.env, CI: "1", ...options.env },
            stdio: ["ignore", "pipe", "pipe"]
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk) => (stdout += chunk));
        let interrupted = false;
        const interrupt = () => {
            interrupted = true;
            child.kill(options.interrupt!.signal);
        };
        const when = options.interrupt?.when;
        child.stderr.on("data", (chunk) => {
            stderr += chunk;
            if (when instanceof RegExp && !interrupted && when.test(stderr))
                interrupt();
        });
        const poll = typeof when === "function" ? setInterval(() => !interrupted && when() && interrupt(), 2) : undefined;
        child.on("error", reject);
        child.on("close", (code) => {
            clearInterval(poll);
            resolve({ code, stdout, stderr });
        });
    });
}
