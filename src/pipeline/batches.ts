import fs from "node:fs";
import path from "node:path";
import { concatTables, readTable, writeTable } from "../data/table-io.js";
import type { RowFor, TableName } from "../data/schemas.js";
import type { StageName } from "./config-schema.js";
import type { RunDir } from "./run-dir.js";
import { makeDirectory } from "../util/fs.js";

/**
 * The finished batches of a long stage, one Arrow file each, written atomically. A stage
 * killed part-way (SIGKILL included) finds them on the next run with the same inputs and
 * carries on from the first missing batch: no row lost, none duplicated.
 */
export class StageBatches<N extends TableName> {
    readonly dir: string;

    constructor(runDir: RunDir, stage: StageName, inputHash: string, private readonly schema: N) {
        this.dir = runDir.partsDir(stage, inputHash);
        makeDirectory(this.dir);
    }

    private fileFor(index: number): string {
        return path.join(this.dir, `batch-${String(index).padStart(6, "0")}.arrow`);
    }

    /** Indexes of the batches already written. */
    completed(): Set<number> {
        const done = new Set<number>();
        for (const name of fs.readdirSync(this.dir)) {
            const match = /^batch-(\d+)\.arrow$/.exec(name);
            if (match != null)
                done.add(Number(match[1]));
        }
        return done;
    }

    /** Batches named by a key rather than a number ("method.set.chunk"). */
    completedKeys(): Set<string> {
        const done = new Set<string>();
        for (const name of fs.readdirSync(this.dir)) {
            const match = /^key-(.+)\.arrow$/.exec(name);
            if (match != null)
                done.add(decodeURIComponent(match[1]!));
        }
        return done;
    }

    private fileForKey(key: string): string {
        return path.join(this.dir, `key-${encodeURIComponent(key)}.arrow`);
    }

    async readKey(key: string): Promise<RowFor<N>[]> {
        return readTable(this.fileForKey(key), this.schema) as Promise<RowFor<N>[]>;
    }

    async writeKey(key: string, rows: RowFor<N>[]): Promise<void> {
        await writeTable(this.fileForKey(key), this.schema, rows);
    }

    async read(index: number): Promise<RowFor<N>[]> {
        return readTable(this.fileFor(index), this.schema) as Promise<RowFor<N>[]>;
    }

    async write(index: number, rows: RowFor<N>[]): Promise<void> {
        await writeTable(this.fileFor(index), this.schema, rows);
    }

    /** Joins the batches in order into the stage's table and removes the part files. */
    async finalize(out: string, runDir: RunDir, stage: StageName): Promise<number> {
        const files = [...this.completed()].sort((a, b) => a - b).map((i) => this.fileFor(i));
        let rows: number;
        if (files.length === 0)
            rows = (await writeTable(out, this.schema, [])).rows;
        else
            rows = (await concatTables(files, out)).rows;
        runDir.clearParts(stage);
        return rows;
    }
}
