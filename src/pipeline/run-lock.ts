import fs from "node:fs";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { fileErrorCause } from "../util/fs.js";
import type { RunDir } from "./run-dir.js";

/**
 * A run directory's lock: `<run>/.lock` holds the PID of the process writing the run and
 * when that process started (Linux: /proc/<pid>/stat), so that a PID reused by another process
 * after a crash or a restart is not taken for the holder. A second process exits with the
 * holder's PID; a lock whose process is gone (killed, crashed) is taken over. Creating the file with O_EXCL makes taking it atomic; taking over a stale
 * one goes through a second O_EXCL file so two newcomers cannot both win.
 */
export class RunLock {
    private released = false;
    private readonly onExit = () => this.release();

    private constructor(readonly file: string) {
        process.on("exit", this.onExit);
    }

    /** Takes the lock of `dir` (which must exist) or throws an InputError naming the holder. */
    static acquire(dir: string): RunLock {
        const file = path.join(dir, ".lock");
        for (let attempt = 0; attempt < 5; attempt++) {
            if (tryCreate(file))
                return new RunLock(file);
            const holder = readHolder(file);
            if (holder != null && holder !== process.pid && isAlive(holder, readHolderStart(file)))
                throw new InputError(`run directory ${dir} is in use by process ${holder} (lock ${file}); wait for it or stop it`);
            takeOverStale(file, holder);
        }
        throw new InputError(`run directory ${dir}: could not take the lock ${file} (other processes keep taking it)`);
    }

    release(): void {
        if (this.released)
            return;
        this.released = true;
        process.off("exit", this.onExit);
        if (readHolder(this.file) === process.pid)
            fs.rmSync(this.file, { force: true });
    }
}

function tryCreate(file: string): boolean {
    try {
        const fd = fs.openSync(file, "wx");
        fs.writeSync(fd, `${process.pid} ${processStart(process.pid) ?? ""}`.trim() + "\n");
        fs.closeSync(fd);
        return true;
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EEXIST")
            return false;
        throw new InputError(`cannot lock the run directory: ${fileErrorCause(error, file)}`);
    }
}

/** The PID in a lock file; null when it is unreadable or half-written. */
function readHolder(file: string): number | null {
    const pid = Number(readLockFields(file)[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** When the holder started, as the lock records it; null in a lock without it. */
function readHolderStart(file: string): string | null {
    return readLockFields(file)[1] ?? null;
}

function readLockFields(file: string): string[] {
    try {
        return fs.readFileSync(file, "utf8").trim().split(/\s+/);
    } catch {
        return [];
    }
}

/** A process of that PID runs, and (where the lock says when the holder started) it is the holder. */
function isAlive(pid: number, started: string | null): boolean {
    try {
        process.kill(pid, 0);
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EPERM")
            return false;
    }
    const now = processStart(pid);
    return started == null || now == null || now === started;
}

/** A process's start time in clock ticks after boot (field 22 of /proc/<pid>/stat); null off Linux. */
function processStart(pid: number): string | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // the fields after the command name (which may hold spaces) in parentheses; state is field 3
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[22 - 3] ?? null;
    } catch {
        return null;
    }
}

/**
 * Removes a stale lock, guarded by `<lock>.takeover` so that only one newcomer removes it
 * (another could otherwise delete the lock the first one just took). A guard left by a
 * killed process is itself stale after a few seconds.
 */
function takeOverStale(file: string, stalePid: number | null): void {
    const guard = `${file}.takeover`;
    if (!tryCreate(guard)) {
        const age = Date.now() - (statOrNull(guard)?.mtimeMs ?? Date.now());
        if (age > 5_000)
            fs.rmSync(guard, { force: true });
        sleep(50);
        return;
    }
    try {
        // Still the same stale holder (or still unreadable)? Then it is ours to remove.
        if (readHolder(file) === stalePid) {
            if (stalePid == null && Date.now() - (statOrNull(file)?.mtimeMs ?? 0) < 1_000)
                sleep(100); // a lock being written right now: give its writer a moment
            else
                fs.rmSync(file, { force: true });
        }
    } finally {
        fs.rmSync(guard, { force: true });
    }
}

function statOrNull(file: string): fs.Stats | null {
    try {
        return fs.statSync(file);
    } catch {
        return null;
    }
}

function sleep(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `work` holding the run directory's lock (creating the folder first). A folder this
 * process created is removed again when the run is rejected before any stage started, and
 * never when another process holds the lock.
 */
export async function withRunLock<T>(runDir: RunDir, work: () => Promise<T>): Promise<T> {
    const created = !fs.existsSync(runDir.dir);
    runDir.ensure();
    let lock: RunLock;
    try {
        lock = RunLock.acquire(runDir.dir);
    } catch (error) {
        if (created) {
            try {
                fs.rmdirSync(runDir.dir); // only while still empty
            } catch {
                // not empty: the lock holder made it its own
            }
        }
        throw error;
    }
    try {
        return await work();
    } catch (error) {
        if (created && !runDir.hasStageRecords())
            fs.rmSync(runDir.dir, { recursive: true, force: true });
        throw error;
    } finally {
        lock.release();
    }
}
