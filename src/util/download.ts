import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { Readable } from "node:stream";
import { RuntimeFailure } from "./errors.js";
import { releaseTemporary, temporaryNameFor } from "./fs.js";
import { formatSeconds } from "./progress.js";

export interface DownloadOptions {
    url: string;
    file: string;
    /** Expected sha256 (hex); the download is rejected and removed on a mismatch. */
    sha256?: string;
    /** Progress lines on this stream. Defaults to process.stderr. */
    stream?: NodeJS.WritableStream;
}

/**
 * Downloads a file to a temporary name, checks its sha256, then renames it into place, so
 * an interrupted or corrupt download never looks like a finished one.
 */
export async function downloadFile({ url, file, sha256, stream = process.stderr }: DownloadOptions): Promise<string> {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    let response: Response;
    try {
        response = await fetch(url);
    } catch (error) {
        throw new RuntimeFailure(`cannot download ${url}: ${(error as Error).cause ?? (error as Error).message}`, {
            hint: `put the file at ${file} by hand, or pass --data DIR with a folder that holds it`
        });
    }
    if (!response.ok || response.body == null)
        throw new RuntimeFailure(`cannot download ${url}: HTTP ${response.status}`);
    const total = Number(response.headers.get("content-length") ?? 0);
    const hash = crypto.createHash("sha256");
    const tmp = temporaryNameFor(file);
    const out = fs.createWriteStream(tmp);
    const started = performance.now();
    let received = 0;
    let lastPrint = 0;
    try {
        for await (const chunk of Readable.fromWeb(response.body as never)) {
            const buffer = chunk as Buffer;
            hash.update(buffer);
            received += buffer.length;
            if (!out.write(buffer))
                await new Promise<void>((resolve) => out.once("drain", () => resolve()));
            const now = performance.now();
            if (now - lastPrint > 1000) {
                lastPrint = now;
                const seconds = (now - started) / 1000;
                const pct = total > 0 ? ` ${((100 * received) / total).toFixed(1)}%` : "";
                stream.write(`download ${path.basename(file)}${pct} ${(received / 1e6).toFixed(1)} MB ${formatSeconds(seconds)}\n`);
            }
        }
        await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
        const digest = hash.digest("hex");
        if (sha256 != null && sha256 !== "" && digest !== sha256.toLowerCase())
            throw new RuntimeFailure(`checksum mismatch for ${url}: expected sha256 ${sha256}, got ${digest}`);
        fs.renameSync(tmp, file);
        return file;
    } catch (error) {
        out.destroy();
        fs.rmSync(tmp, { force: true });
        throw error;
    } finally {
        releaseTemporary(tmp);
    }
}
