import { readGgufInfoSync, readTensorData } from "../../src/gguf/reader.js";
import { writeGguf, type GgufMetadataValue, type GgufTensorSpec } from "../../src/gguf/writer.js";

export type MetadataEdit = (metadata: Record<string, GgufMetadataValue>) => void;

/**
 * Copies a real GGUF with edited metadata (and optionally edited tensor specs): the way to
 * make a file whose header is well-formed but whose hyperparameters llama.cpp asserts on.
 */
export async function rewriteGguf(source: string, out: string, edit: MetadataEdit, editTensors?: (tensors: GgufTensorSpec[]) => void): Promise<string> {
    const info = readGgufInfoSync(source);
    const metadata = structuredClone(info.metadata);
    edit(metadata);
    const tensors: GgufTensorSpec[] = [];
    for (const tensor of info.tensors)
        tensors.push({ name: tensor.name, dims: tensor.dims, type: tensor.type, data: await readTensorData(info, tensor.name) });
    editTensors?.(tensors);
    await writeGguf({ path: out, metadata, tensors, alignment: info.alignment });
    return out;
}
