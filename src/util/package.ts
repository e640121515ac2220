import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository (or installed package) root: the folder holding package.json. */
export const packageRoot: string = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(start: string): string {
    let dir = start;
    while (!fs.existsSync(path.join(dir, "package.json"))) {
        const parent = path.dirname(dir);
        if (parent === dir)
            throw new Error(`no package.json above ${start}`);
        dir = parent;
    }
    return dir;
}

export function packageVersion(): string {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string };
    return pkg.version;
}
