import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { InputError } from "./errors.js";

/**
 * Writes a file atomically: to a temporary name beside it, then renamed,
 * so a killed process never leaves half a file under the final name.
 */
export async function writeFileAtomic(filePath: string, data: string | Uint8Array): Promise<void> {
    await fs.promises.mkdir(path.dirname(path.resolve(filePath)), { recursive: true });
    const tmp = temporaryNameFor(filePath);
    try {
        await fs.promises.writeFile(tmp, data);
        await fs.promises.rename(tmp, filePath);
    } catch (error) {
        await fs.promises.rm(tmp, { force: true });
        throw error;
    }
}

export function writeFileAtomicSync(filePath: string, data: string | Uint8Array): void {
    fs.mkdirSync(path.dirname(path.resolve(filePath)), { recursive: true });
    const tmp = temporaryNameFor(filePath);
    try {
        fs.writeFileSync(tmp, data);
        fs.renameSync(tmp, filePath);
    } catch (error) {
        fs.rmSync(tmp, { force: true });
        throw error;
    }
}

/** `dir/.name.<pid>.<random>.tmp`: hidden, unique, and on the same file system as the target. */
export function temporaryNameFor(filePath: string): string {
    const dir = path.dirname(filePath);
    const base = path.basename(filePath);
    return path.join(dir, `.${base}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`);
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
