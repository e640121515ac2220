import { gguf, type GgufMetadataInput } from "./writer.js";

/**
 * The header of a GGUF LoRA adapter, as llama.cpp's loader and autoact-train read it: the base's
 * architecture, and alpha (the update is scaled by alpha / rank). Its tensors are
 * `<base weight>.lora_a` [in, rank] and `.lora_b` [rank, out], in ggml's order of dimensions.
 */
export function loraAdapterMetadata(arch: string, alpha: number): Record<string, GgufMetadataInput> {
    return {
        "general.architecture": arch,
        "general.type": "adapter",
        "adapter.type": "lora",
        "adapter.lora.alpha": gguf.f32(alpha)
    };
}
