import fs from "node:fs";
import path from "node:path";
import { InputError } from "../util/errors.js";
import { fileErrorCause } from "../util/fs.js";

/**
 * A run directory's lock: `<run>/.lock` holds the PID of the process writing the run. A
 * second process exits with the holder's PID; a lock whose process is gone (killed, crashed)
 * is taken over. Creating the file with O_EXCL makes taking it atomic; taking over a stale
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
            if (holder != null && holder !== process.pid && isAlive(holder))
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
        fs.writeSync(fd, `${process.pid}\n`);
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
    try {
        const pid = Number(fs.readFileSync(file, "utf8").trim());
        return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
    } catch {
        return null;
    }
}

function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
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
