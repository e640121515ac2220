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
    /** Sends `signal` to the CLI process alone (not its children) once its stderr matches `when`. */
    interrupt?: { when: RegExp; signal: NodeJS.Signals };
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
        child.stderr.on("data", (chunk) => {
            stderr += chunk;
            if (options.interrupt != null && !interrupted && options.interrupt.when.test(stderr)) {
                interrupted = true;
                child.kill(options.interrupt.signal);
            }
        });
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
}
