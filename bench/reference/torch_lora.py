#!/usr/bin/env python3
"""PyTorch LoRA reference for `autoact bench train --compare-torch`.

Trains a LoRA adapter on a llama-architecture decoder of a given shape with random frozen
weights, the way autoact-train does: response-only loss (the first quarter of each sample is
prompt), AdamW on the adapter, global-norm clipping. It prints one JSON line on stdout with the
tokens/s of each step after the first (the warm-up) and peak memory.

The adapter comes from PEFT when it is installed (--lora auto|peft), else from a small
hand-written LoRA module (--lora plain). Only torch is needed. Exit code 3 means torch is
absent: the benchmark skips the comparison.

    torch_lora.py --n-embd 512 --layers 8 --heads 8 --kv-heads 4 --ff 1536 --vocab 512 \
        --rank 8 --alpha 16 --targets attn_q,attn_v --ctx 256 --batch 8 --steps 6 --threads 2
"""
import argparse
import contextlib
import json
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as error:  # the caller skips the comparison
    print(f"torch_lora.py: Python torch is not importable ({error})", file=sys.stderr)
    sys.exit(3)

# autoact-train's target names -> the module names of this model (and of Hugging Face llama)
TARGETS = {
    "attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
    "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj",
}


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch LoRA reference of autoact bench train")
    shape = p.add_argument_group("model shape (from the GGUF)")
    shape.add_argument("--n-embd", type=int, required=True)
    shape.add_argument("--layers", type=int, required=True)
    shape.add_argument("--heads", type=int, required=True)
    shape.add_argument("--kv-heads", type=int, required=True)
    shape.add_argument("--ff", type=int, required=True)
    shape.add_argument("--vocab", type=int, required=True)
    shape.add_argument("--rope-theta", type=float, default=10000.0)
    shape.add_argument("--norm-eps", type=float, default=1e-5)
    shape.add_argument("--tied-embeddings", action="store_true", help="output projection shares token_embd")
    shape.add_argument("--qkv-bias", action="store_true", help="q, k, v projections with biases (qwen2)")
    lora = p.add_argument_group("adapter and training")
    lora.add_argument("--rank", type=int, default=8)
    lora.add_argument("--alpha", type=float, default=16.0)
    lora.add_argument("--dropout", type=float, default=0.0)
    lora.add_argument("--targets", default="attn_q,attn_v")
    lora.add_argument("--lr", type=float, default=1e-4)
    lora.add_argument("--weight-decay", type=float, default=0.0)
    lora.add_argument("--grad-clip", type=float, default=1.0)
    lora.add_argument("--ctx", type=int, default=256, help="tokens per sample")
    lora.add_argument("--batch", type=int, default=1, help="samples per step")
    lora.add_argument("--steps", type=int, default=6, help="steps; the first is the warm-up")
    lora.add_argument("--prompt-share", type=float, default=0.25)
    lora.add_argument("--lora", choices=["auto", "peft", "plain"], default="auto")
    run = p.add_argument_group("machine")
    run.add_argument("--device", default="cpu", help="cpu | cuda")
    run.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32", help="frozen weights and autocast type")
    run.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    run.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    unknown = [t for t in args.targets.split(",") if t not in TARGETS]
    if unknown or args.targets == "":
        p.error(f"--targets: unknown module(s) {unknown} (known: {','.join(TARGETS)})")
    if args.n_embd % args.heads or args.heads % args.kv_heads:
        p.error("--heads must divide --n-embd and --kv-heads must divide --heads")
    if args.steps < 2:
        p.error("--steps must be at least 2: the first step is the warm-up")
    return args


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(ctx, head_dim, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(ctx, device=device).float(), inv)
    return torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return (x * cos + rotated * sin).type_as(x)


def causal_attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return torch.softmax(scores.masked_fill(mask, float("-inf")).float(), -1).type_as(q) @ v


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = a.heads, a.kv_heads, a.n_embd // a.heads
        kv = a.kv_heads * self.head_dim
        self.attn_norm = RMSNorm(a.n_embd, a.norm_eps)
        self.q_proj = nn.Linear(a.n_embd, a.n_embd, bias=a.qkv_bias)
        self.k_proj = nn.Linear(a.n_embd, kv, bias=a.qkv_bias)
        self.v_proj = nn.Linear(a.n_embd, kv, bias=a.qkv_bias)
        self.o_proj = nn.Linear(a.n_embd, a.n_embd, bias=False)
        self.ffn_norm = RMSNorm(a.n_embd, a.norm_eps)
        self.gate_proj = nn.Linear(a.n_embd, a.ff, bias=False)
        self.up_proj = nn.Linear(a.n_embd, a.ff, bias=False)
        self.down_proj = nn.Linear(a.ff, a.n_embd, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, 1)
            v = v.repeat_interleave(self.heads // self.kv_heads, 1)
        x = x + self.o_proj(causal_attention(q, k, v).transpose(1, 2).reshape(b, t, -1))
        h = self.ffn_norm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.n_embd)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.n_embd, a.norm_eps)
        self.output = None if a.tied_embeddings else nn.Linear(a.n_embd, a.vocab, bias=False)
        self.head_dim, self.rope_theta = a.n_embd // a.heads, a.rope_theta

    def forward(self, tokens):
        cos, sin = rope_tables(tokens.shape[1], self.head_dim, self.rope_theta, tokens.device)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos.to(x.dtype), sin.to(x.dtype))
        x = self.norm(x)
        return x @ self.embed.weight.t() if self.output is None else self.output(x)


class LoraLinear(nn.Module):
    """y = W x + (alpha / r) B A dropout(x), W frozen; A random, B zero (as autoact-train starts)."""

    def __init__(self, base, rank, alpha, dropout):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=torch.float32, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=torch.float32, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b) * self.scale


def add_lora(model, a, modules):
    """Attaches the adapter; returns a label of the implementation used."""
    fallback = "plain"
    if a.lora in ("auto", "peft"):
        try:
            import peft
        except ImportError:
            if a.lora == "peft":
                raise
            peft = None
        if peft is not None and not hasattr(peft, "inject_adapter_in_model"):  # PEFT < 0.6 wraps only transformers models
            if a.lora == "peft":
                sys.exit(f"torch_lora.py: PEFT {peft.__version__} has no inject_adapter_in_model (0.6 or newer needed)")
            fallback = f"plain (PEFT {peft.__version__} too old)"
        elif peft is not None:
            config = peft.LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules=modules, bias="none")
            peft.inject_adapter_in_model(config, model)
            for name, param in model.named_parameters():
                param.requires_grad = "lora_" in name
                if "lora_" in name:
                    param.data = param.data.float()  # adapter weights stay F32, as autocast training keeps them
            return f"peft {peft.__version__}"
    for block in model.blocks:
        for name in modules:
            setattr(block, name, LoraLinear(getattr(block, name), a.rank, a.alpha, a.dropout))
    return fallback


def main():
    a = parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]

    model = Llama(a)
    for param in model.parameters():  # random frozen weights, as the synthetic GGUF models have
        if param.dim() > 1:
            nn.init.normal_(param, std=0.02)
        param.requires_grad = False
    model.to(device=device, dtype=dtype)
    modules = [TARGETS[t] for t in a.targets.split(",")]
    implementation = add_lora(model, a, modules)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=a.weight_decay, betas=(0.9, 0.999), eps=1e-8)
    model.train()

    generator = torch.Generator().manual_seed(a.seed)
    prompt = int(a.ctx * a.prompt_share)
    rates, losses = [], []
    for step in range(a.steps):
        tokens = torch.randint(3, a.vocab, (a.batch, a.ctx), generator=generator).to(device)
        labels = tokens[:, 1:].clone()
        labels[:, : max(0, prompt - 1)] = -100  # loss on the response tokens only
        sync(device)
        start = time.perf_counter()
        with autocast(device, dtype):
            logits = model(tokens)[:, :-1]
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), labels.reshape(-1), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, a.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        sync(device)
        seconds = time.perf_counter() - start
        if step > 0:  # the first step (allocation, kernel selection) is the warm-up
            rates.append(a.batch * a.ctx / seconds)
        print(f"step {step + 1}/{a.steps}: loss {losses[-1]:.4f}, {a.batch * a.ctx / seconds:.1f} tokens/s", file=sys.stderr)

    mean = sum(rates) / len(rates)
    stddev = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)) if len(rates) > 1 else 0.0
    print(json.dumps({
        "engine": "pytorch", "torch": torch.__version__, "lora": implementation, "device": str(device), "dtype": a.dtype,
        "threads": torch.get_num_threads(), "batch": a.batch, "ctx": a.ctx, "steps": a.steps, "samples": rates,
        "tokens_per_s": mean, "stddev": stddev, "first_loss": losses[0], "last_loss": losses[-1],
        "lora_params": sum(p.numel() for p in trainable),
        "frozen_params": sum(p.numel() for p in model.parameters() if not p.requires_grad),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_vram_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
    }))


def autocast(device, dtype):
    """Matmuls in the low-precision type, the adapter's weights and optimizer in F32 (as mixed-precision training runs)."""
    return contextlib.nullcontext() if dtype == torch.float32 else torch.autocast(device_type=device.type, dtype=dtype)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
