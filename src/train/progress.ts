import type { NativeBuildProgress } from "./native-build.js";
import type { TrainStart, TrainStep } from "./trainer.js";
import type { SampleFit } from "./train-agents.js";
import { cutWhere } from "./dataset.js";

/**
 * Human progress for `autoact train` on stderr: a redrawn line on a terminal, a plain line
 * every few seconds elsewhere. stdout stays free for data.
 */
export function createTrainProgress(stream: NodeJS.WriteStream = process.stderr, interactive = stream.isTTY === true && process.env.CI == null) {
    let totalSteps = 0;
    let lastPlain = 0;
    let open = false;
    let compiled = false;
    const write = (text: string, force = false) => {
        if (interactive) {
            stream.write(`\r\x1b[2K${text}`);
            open = true;
        } else if (force || performance.now() - lastPlain > 5000) {
            stream.write(`${text}\n`);
            lastPlain = performance.now();
        }
    };
    const endLine = () => {
        if (open)
            stream.write("\n");
        open = false;
    };
    return {
        build(progress: NativeBuildProgress) {
            // an up-to-date build says nothing; a real one shows its steps and how long it took
            if (progress.phase === "build" && progress.total != null) {
                compiled = true;
                write(`native build [${progress.done}/${progress.total}] ${progress.message}`);
            } else if (progress.phase !== "build" && (progress.phase !== "ready" || compiled)) {
                endLine();
                stream.write(`${progress.message}\n`);
            }
        },
        fit(agent: string, fit: SampleFit) {
            if (fit.truncated + fit.tooLong > 0) {
                endLine();
                stream.write(`${agent}: ${fit.truncated} samples cut to fit the context (responses whole; ${cutWhere(fit)}), ` +
                    `${fit.tooLong} left out (the response alone is longer)\n`);
            }
        },
        warning(agent: string, warning: string) {
            endLine();
            stream.write(`${agent}: warning: ${warning}\n`);
        },
        start(agent: string, start: TrainStart) {
            endLine();
            totalSteps = start.total_steps;
            stream.write(`training ${agent}: ${start.n_train} samples (${start.n_eval} held out), ${start.n_params} LoRA parameters (rank ${start.rank}, alpha ${start.alpha}, ${start.targets.join(",")}), ` +
                `${start.total_steps} steps${start.start_step > 0 ? `, resuming after step ${start.start_step}` : ""}\n`);
        },
        step(agent: string, s: TrainStep) {
            const width = 20;
            const filled = totalSteps > 0 ? Math.round((s.step / totalSteps) * width) : 0;
            const bar = interactive ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
            write(`${agent} ${bar}${s.step}/${totalSteps} loss ${s.loss.toFixed(4)}` +
                (s.eval_loss != null ? ` eval ${s.eval_loss.toFixed(4)}` : "") +
                ` ${s.tokens_per_s.toFixed(0)} tok/s ETA ${formatSeconds(s.eta_s)}`, s.step === totalSteps);
        },
        done: endLine
    };
}

function formatSeconds(seconds: number): string {
    if (!Number.isFinite(seconds))
        return "?";
    const s = Math.round(seconds);
    return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
        : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
