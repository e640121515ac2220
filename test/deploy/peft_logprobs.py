"""Log-probabilities of a token sequence through Hugging Face transformers + PEFT.

The base is an F32 GGUF (llama, qwen2 or qwen3) read with the gguf package and put into the
transformers model of its architecture (llama's q and k rows back in Hugging Face's order);
the adapter is a PEFT folder as `autoact deploy` writes it. Prints a JSON list: for each i,
log p(tokens[i+1] | tokens[..i]), as test/train/helpers.ts's tokenLogProbs does through
llama.cpp, so that the two can be compared.

usage: peft_logprobs.py BASE.gguf PEFT_DIR|- TOKENS_JSON
"""
import json
import sys

import numpy as np
import torch
from gguf import GGUFReader
from peft import PeftModel
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

MODELS = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    value = f.parts[f.data[0]]
    return value.tobytes().decode() if value.dtype == np.uint8 else value.item()


def hf_order(w, heads):
    # inverse of llama.cpp's converter: row h*D + 2j + i holds Hugging Face's row h*D + i*D/2 + j
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load(path):
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture")
    heads = field(reader, f"{arch}.attention.head_count")
    kv_heads = field(reader, f"{arch}.attention.head_count_kv", heads)
    tensors = {t.name: torch.from_numpy(np.array(t.data, dtype=np.float32)) for t in reader.tensors}
    settings = dict(
        vocab_size=tensors["token_embd.weight"].shape[0],
        hidden_size=field(reader, f"{arch}.embedding_length"),
        intermediate_size=field(reader, f"{arch}.feed_forward_length"),
        num_hidden_layers=field(reader, f"{arch}.block_count"),
        num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=field(reader, f"{arch}.embedding_length") // heads,
        rms_norm_eps=field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=field(reader, f"{arch}.rope.freq_base", 10000.0),
        max_position_embeddings=field(reader, f"{arch}.context_length", 2048),
        tie_word_embeddings="output.weight" not in tensors,
    )
    config, model_class = MODELS[arch]
    model = model_class(config(**settings)).float().eval()
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
    state = {"model.embed_tokens.weight": tensors["token_embd.weight"], "model.norm.weight": tensors["output_norm.weight"]}
    if "output.weight" in tensors:
        state["lm_head.weight"] = tensors["output.weight"]
    for name, value in tensors.items():
        parts = name.split(".")
        if parts[0] != "blk":
            continue
        layer, module, kind = parts[1], parts[2], parts[3]
        if arch == "llama" and module in ("attn_q", "attn_k"):
            value = hf_order(value, heads if module == "attn_q" else kv_heads)
        state[f"model.layers.{layer}.{names[module]}.{kind}"] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and settings["tie_word_embeddings"]) and "rotary" not in m]
    if missing or unexpected:
        raise SystemExit(f"peft_logprobs.py: weights missing {missing}, unexpected {unexpected}")
    if settings["tie_word_embeddings"]:
        model.tie_weights()
    return model


def main():
    base, adapter, tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = load(base)
    if adapter != "-":
        model = PeftModel.from_pretrained(model, adapter).eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    print(json.dumps([logp[i, tokens[i + 1]].item() for i in range(len(tokens) - 1)]))


if __name__ == "__main__":
    main()
