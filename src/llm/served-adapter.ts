import path from "node:path";
import { sha256File } from "../util/fs.js";

/**
 * The model name an adapter is served under where a server picks adapters by name (vLLM's
 * `--lora-modules NAME=...`, an Ollama model per adapter): the file's stem and the start of its
 * SHA-256, e.g. `plan-3f2a9c01b7de`. Every run's adapters are called plan, tool and reflect, and
 * one Ollama holds the models of every run deployed to it: a name by content keeps two runs
 * apart, and a request can only reach the very adapter this run trained. `autoact deploy` names
 * what it writes with this, and the remote backend asks for it.
 */
export async function servedAdapterName(adapterFile: string): Promise<string> {
    return `${adapterStem(adapterFile)}-${(await sha256File(adapterFile)).slice(0, 12)}`;
}

/** Whether `name` (a served name, or its file name) is one of servedAdapterName's for `adapterFile`'s stem, of any content. */
export function isServedNameOf(name: string, adapterFile: string): boolean {
    const match = /^(.*)-[0-9a-f]{12}$/.exec(adapterStem(name));
    return match?.[1] === adapterStem(adapterFile);
}

function adapterStem(file: string): string {
    return path.basename(file).replace(/\.gguf$/i, "");
}
