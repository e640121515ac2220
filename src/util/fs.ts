import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { InputError } from "./errors.js";

/**
 * Writes a file atomically: to a temporary name beside it, then renamed,
 * so a killed process never leaves half a file under the final name.
 */
export async function writeFileAtomic(filePath: string, data: string | Uint8Array): Promise<void> {
    makeDirectory(path.dirname(path.resolve(filePath)));
    const tmp = temporaryNameFor(filePath);
    try {
        await fs.promises.writeFile(tmp, data);
        await fs.promises.rename(tmp, filePath);
    } catch (error) {
        await fs.promises.rm(tmp, { force: true });
        throw error;
    } finally {
        releaseTemporary(tmp);
    }
}

export function writeFileAtomicSync(filePath: string, data: string | Uint8Array): void {
    makeDirectory(path.dirname(path.resolve(filePath)));
    const tmp = temporaryNameFor(filePath);
    try {
        fs.writeFileSync(tmp, data);
        fs.renameSync(tmp, filePath);
    } catch (error) {
        fs.rmSync(tmp, { force: true });
        throw error;
    } finally {
        releaseTemporary(tmp);
    }
}

/**
 * Temporary files being written now. An interrupt ends the process with process.exit, which
 * runs no `finally`: the signal handler (src/cli/main.ts) removes these instead.
 */
const temporariesInFlight = new Set<string>();

/**
 * `dir/.name.<pid>.<random>.tmp`: hidden, unique, and on the same file system as the target.
 * The name is registered as in flight until `releaseTemporary` (after the rename, or after
 * removing it), so an interrupt in between removes the file.
 */
export function temporaryNameFor(filePath: string): string {
    const dir = path.dirname(filePath);
    const base = path.basename(filePath);
    const tmp = path.join(dir, `.${base}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`);
    temporariesInFlight.add(path.resolve(tmp));
    return tmp;
}

/** The writer of `tmp` is done with it (renamed into place or removed). */
export function releaseTemporary(tmp: string): void {
    temporariesInFlight.delete(path.resolve(tmp));
}

/** Removes every temporary file still in flight; for an exit that skips the writers' own cleanup. */
export function removeTemporariesInFlight(): void {
    for (const tmp of temporariesInFlight) {
        try {
            fs.rmSync(tmp, { force: true });
        } catch {
            // exiting anyway: one that cannot be removed must not keep the others
        }
    }
    temporariesInFlight.clear();
}

/** Throws an InputError naming the file when it does not exist or is not a regular file. */
export function requireFile(filePath: string, what = "file"): string {
    let stat: fs.Stats;
    try {
        stat = fs.statSync(filePath);
    } catch {
        throw new InputError(`${what} not found: ${filePath}`);
    }
    if (!stat.isFile())
        throw new InputError(`${what} is not a regular file: ${filePath}`);
    return filePath;
}

export async function sha256File(filePath: string): Promise<string> {
    const hash = crypto.createHash("sha256");
    for await (const chunk of fs.createReadStream(filePath))
        hash.update(chunk as Buffer);
    return hash.digest("hex");
}

/**
 * `mkdir -p` that fails with one line instead of looping: Node's recursive mkdir spins
 * forever under /proc, and its EEXIST/ENOTDIR/EACCES errors name no cause a user can act on.
 * Creates each missing folder from the deepest existing ancestor down.
 */
export function makeDirectory(dir: string, what = "folder"): string {
    const target = path.resolve(dir);
    const missing: string[] = [];
    let cursor = target;
    for (;;) {
        let stat: fs.Stats | null = null;
        try {
            stat = fs.statSync(cursor);
        } catch (error) {
            // ENOTDIR: some ancestor is a file; walking up finds and names it.
            const code = (error as NodeJS.ErrnoException).code;
            if (code !== "ENOENT" && code !== "ENOTDIR")
                throw new InputError(`cannot create ${what} ${target}: ${fileErrorCause(error, cursor)}`);
        }
        if (stat != null) {
            if (!stat.isDirectory())
                throw new InputError(`cannot create ${what} ${target}: ${cursor} is not a folder`);
            break;
        }
        missing.push(cursor);
        const parent = path.dirname(cursor);
        if (parent === cursor)
            break;
        cursor = parent;
    }
    for (const folder of missing.reverse()) {
        try {
            fs.mkdirSync(folder);
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "EEXIST" && fs.statSync(folder).isDirectory())
                continue; // made by someone else meanwhile
            throw new InputError(`cannot create ${what} ${target}: ${fileErrorCause(error, folder)}`);
        }
    }
    return target;
}

/** A Node file-system error as words: "ENOENT: no such file..." becomes "<file>: no such file or directory". */
export function fileErrorCause(error: unknown, file?: string): string {
    const code = (error as NodeJS.ErrnoException)?.code;
    const words: Record<string, string> = {
        ENOENT: "no such file or folder",
        EEXIST: "already exists",
        ENOTDIR: "a part of the path is not a folder",
        EISDIR: "is a folder, not a file",
        EACCES: "permission denied",
        EPERM: "operation not permitted",
        EROFS: "read-only file system",
        ENOSPC: "no space left on the device",
        ENAMETOOLONG: "name too long"
    };
    const cause = code != null && words[code] != null ? words[code] : (error instanceof Error ? error.message.split("\n")[0]! : String(error));
    return file == null ? cause : `${file}: ${cause}`;
}
