import path from "node:path";
import { metadataValue, readGgufInfo } from "../gguf/reader.js";
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

/**
 * The id of an adapter's weights that autoact-train writes as its task name
 * (`adapter.lora.task_name`, "autoact weights <hash>"); null for an adapter without one.
 * llama-server reports the task name it read when it loaded the file (GET /lora-adapters), so a
 * server that loaded this path before a retrain rewrote it reports another id.
 */
export async function adapterWeightsId(adapterFile: string): Promise<string | null> {
    const value = metadataValue(await readGgufInfo(adapterFile), "adapter.lora.task_name");
    return typeof value === "string" && value !== "" ? value : null;
}

function adapterStem(file: string): string {
    return path.basename(file).replace(/\.gguf$/i, "");
}
