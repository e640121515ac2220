/**
 * Progress of a long stage on stderr: items done, tokens/s and ETA. A redrawn bar on a
 * terminal; plain lines, at most one every few seconds, elsewhere (CI logs, pipes).
 */
export interface ProgressReporter {
    start(label: string, total: number): void;
    /** Adds finished items and generated tokens. */
    advance(items: number, tokens?: number): void;
    done(summary?: string): void;
}

export interface ProgressOptions {
    /** Defaults to process.stderr. */
    stream?: NodeJS.WriteStream;
    /** Defaults to true when the stream is a terminal and CI is not set. */
    interactive?: boolean;
    /** Minimum seconds between plain lines. Defaults to 5. */
    plainInterval?: number;
    /** Print nothing. Defaults to false. */
    silent?: boolean;
}

export function createProgress(options: ProgressOptions = {}): ProgressReporter {
    const stream = options.stream ?? process.stderr;
    const interactive = options.interactive ?? (stream.isTTY === true && process.env.CI == null);
    const interval = (options.plainInterval ?? 5) * 1000;
    let label = "";
    let total = 0;
    let done = 0;
    let tokens = 0;
    let startedAt = 0;
    let lastPrint = 0;

    const line = (): string => {
        const seconds = (performance.now() - startedAt) / 1000;
        const rate = seconds > 0 ? tokens / seconds : 0;
        const eta = done > 0 && total > done ? ((total - done) * seconds) / done : 0;
        const width = 24;
        const filled = total > 0 ? Math.round((done / total) * width) : 0;
        const bar = interactive ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
        return `${label} ${bar}${done}/${total}  ${rate.toFixed(1)} tok/s  ${formatSeconds(seconds)} elapsed` +
            (eta > 0 ? `  ETA ${formatSeconds(eta)}` : "");
    };
    const print = (force: boolean) => {
        if (options.silent)
            return;
        const now = performance.now();
        if (interactive) {
            stream.write(`\r\x1b[2K${line()}`);
        } else if (force || now - lastPrint >= interval) {
            stream.write(`${line()}\n`);
            lastPrint = now;
        }
    };
    return {
        start(newLabel, newTotal) {
            label = newLabel;
            total = newTotal;
            done = 0;
            tokens = 0;
            startedAt = performance.now();
            lastPrint = startedAt;
            print(true);
        },
        advance(items, newTokens = 0) {
            done += items;
            tokens += newTokens;
            print(false);
        },
        done(summary) {
            if (options.silent)
                return;
            if (interactive)
                stream.write(`\r\x1b[2K`);
            stream.write(`${line()}${summary ? `  ${summary}` : ""}\n`);
        }
    };
}

export function formatSeconds(seconds: number): string {
    if (seconds < 60)
        return `${seconds.toFixed(1)}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60)
        return `${minutes}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
    return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
