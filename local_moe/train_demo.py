"""Train the embedded demo model: a small DeepSeek-V3-style MoE on the text shipped in `demo_corpus/`.

The router is DeepSeek-V3's sigmoid gate with auxiliary-loss-free balancing: each expert has a
selection bias that only affects which experts are chosen (never the mixing weights); after every
step the bias of an overloaded expert goes down by `gamma` and an underloaded one goes up. With
`balance=False` the bias stays zero, which is the baseline the load CV is compared against.

The checkpoint is written in Hugging Face `deepseek_v3` format (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json with a chat template), so `transformers` loads it too.
This is a demo: a few million parameters trained for minutes says things that sound like the corpus,
not things that are true.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from local_moe import moe
from local_moe.bpe import CHAT_TEMPLATE, save_tokenizer, train_bpe
from local_moe.config import parse_config
from local_moe.model import Transformer
from local_moe.moe import RoutingRecord

CORPUS_DIR = Path(__file__).parent / "demo_corpus"
SYSTEM = "You are a small demo model running inside Bulkhead."


def demo_config(vocab_size: int, eos: int, pad: int) -> dict[str, Any]:
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": vocab_size,
        "hidden_size": 192,
        "intermediate_size": 384,
        "moe_intermediate_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_shared_experts": 1,
        "n_routed_experts": 16,
        "num_experts_per_tok": 2,
        "routed_scaling_factor": 1.0,
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": True,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 64,
        "q_lora_rank": None,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 32,
        "v_head_dim": 32,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-6,
        "rope_interleave": True,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "initializer_range": 0.02,
        "num_nextn_predict_layers": 0,
        "dtype": "float32",
    }


def load_corpus() -> list[str]:
    """Documents: each `Q:`/`A:` pair becomes a ChatML conversation, so the model learns the chat format."""
    docs = []
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        for block in re.split(r"\n\s*\n", path.read_text()):
            block = block.strip()
            m = re.match(r"Q:\s*(.+?)\nA:\s*(.+)", block, re.S)
            if m:
                question, answer = m.group(1).strip(), " ".join(m.group(2).split())
                docs.append(
                    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
                    f"<|im_start|>assistant\n{answer}<|im_end|>\n"
                )
            elif block:
                docs.append(" ".join(block.split()) + "<|endoftext|>")
    return docs


def _init(model: Transformer, std: float) -> None:
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            torch.nn.init.ones_(p)
        elif p.dim() >= 2:
            torch.nn.init.normal_(p, std=std)
        else:
            torch.nn.init.zeros_(p)


def _moe_layers(model: Transformer) -> list[moe.MoE]:
    return [b.mlp for b in model.layers if b.is_moe]


def _batches(stream: torch.Tensor, batch: int, seq: int, rng: random.Random):
    while True:
        starts = [rng.randrange(0, len(stream) - seq - 1) for _ in range(batch)]
        x = torch.stack([stream[s : s + seq + 1] for s in starts])
        yield x[:, :-1], x[:, 1:]


def load_cv(model: Transformer, stream: torch.Tensor, seq: int = 128) -> float:
    """Mean over MoE layers of the expert-load coefficient of variation on `stream`."""
    record = RoutingRecord()
    n = (len(stream) - 1) // seq
    with torch.no_grad():
        model(stream[: n * seq].view(n, seq), record=record)
    cvs = []
    for counts in record.counts:
        load = counts.sum(0).double()
        cvs.append((load.std(unbiased=False) / load.mean()).item())
    return sum(cvs) / len(cvs)


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our fused layout back to the per-expert Hugging Face key names."""
    args = model.args
    sd: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": model.embed.weight,
        "model.norm.weight": model.norm.weight,
        "lm_head.weight": model.lm_head.weight,
    }
    attn_names = {
        "wq": "q_proj",
        "wq_a": "q_a_proj",
        "q_norm": "q_a_layernorm",
        "wq_b": "q_b_proj",
        "wkv_a": "kv_a_proj_with_mqa",
        "kv_norm": "kv_a_layernorm",
        "wkv_b": "kv_b_proj",
        "wo": "o_proj",
    }

    def mlp(src: moe.MLP, dst: str) -> None:
        gate, up = src.w13.weight.split(src.inter, dim=0)
        sd[f"{dst}.gate_proj.weight"], sd[f"{dst}.up_proj.weight"] = gate, up
        sd[f"{dst}.down_proj.weight"] = src.w2.weight

    for i, block in enumerate(model.layers):
        p = f"model.layers.{i}"
        sd[f"{p}.input_layernorm.weight"] = block.attn_norm.weight
        sd[f"{p}.post_attention_layernorm.weight"] = block.mlp_norm.weight
        for name, t in block.attn.named_parameters():
            mod, part = name.rsplit(".", 1)
            sd[f"{p}.self_attn.{attn_names[mod]}.{part}"] = t
        if not block.is_moe:
            mlp(block.mlp, f"{p}.mlp")
            continue
        m = block.mlp
        sd[f"{p}.mlp.gate.weight"] = m.gate.weight
        sd[f"{p}.mlp.gate.e_score_correction_bias"] = m.gate.bias
        for e in range(args.num_experts):
            gate, up = m.experts.w13[e].split(m.experts.inter, dim=0)
            sd[f"{p}.mlp.experts.{e}.gate_proj.weight"] = gate
            sd[f"{p}.mlp.experts.{e}.up_proj.weight"] = up
            sd[f"{p}.mlp.experts.{e}.down_proj.weight"] = m.experts.w2[e]
        mlp(m.shared, f"{p}.mlp.shared_experts")
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def train_demo(
    out: Path,
    *,
    steps: int | None = None,
    balance: bool = True,
    seed: int = 0,
    batch: int = 16,
    seq: int = 128,
    lr: float = 3e-3,
    gamma: float = 0.01,
    log_every: int = 50,
) -> dict[str, Any]:
    steps = 400 if steps is None else steps
    torch.manual_seed(seed)
    rng = random.Random(seed)
    docs = load_corpus()
    rng.shuffle(docs)
    tok = train_bpe(docs, vocab_size=1024)
    eos, pad = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")
    ids = [i for d in docs for i in tok.encode(d).ids]
    split = int(len(ids) * 0.95)
    train_ids, eval_ids = torch.tensor(ids[:split]), torch.tensor(ids[split:])
    raw = demo_config(tok.get_vocab_size(), eos, pad)
    args = parse_config(raw)
    model = Transformer(args)
    _init(model, raw["initializer_range"])
    model.train()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.95), weight_decay=0.1
    )
    layers = _moe_layers(model)
    previous_mode = moe.DISPATCH_MODE
    # grouped_mm has autograd; per-expert slices would materialize a full-size zero gradient per expert
    moe.DISPATCH_MODE = "grouped"
    data = _batches(train_ids, batch, seq, rng)
    start, loss_value = time.monotonic(), float("nan")
    try:
        for step in range(steps):
            lr_now = (
                lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
            )
            for group in opt.param_groups:
                group["lr"] = lr_now
            x, y = next(data)
            record = RoutingRecord()
            logits = model(x, record=record)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if balance:
                with torch.no_grad():
                    for layer, counts in zip(layers, record.counts, strict=True):
                        load = counts.sum(0)
                        layer.gate.bias += gamma * torch.sign(load.mean() - load)
            loss_value = loss.item()
            if log_every and (step % log_every == 0 or step == steps - 1):
                print(f"step {step:4d}  loss {loss_value:.3f}  {time.monotonic() - start:6.1f}s", flush=True)
    finally:
        moe.DISPATCH_MODE = previous_mode
    model.eval()
    cv = load_cv(model, eval_ids)
    with torch.no_grad():
        x = eval_ids[: (len(eval_ids) - 1) // seq * seq + 1]
        n = (len(x) - 1) // seq
        ev = model(x[:-1].view(n, seq))
        eval_loss = F.cross_entropy(ev.view(-1, ev.shape[-1]), x[1:].view(-1)).item()
    out.mkdir(parents=True, exist_ok=True)
    save_file(to_hf_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    (out / "generation_config.json").write_text(
        json.dumps({"eos_token_id": eos, "pad_token_id": pad}, indent=2)
    )
    save_tokenizer(tok, out)
    report = {
        "steps": steps,
        "balance": balance,
        "final_loss": loss_value,
        "eval_loss": eval_loss,
        "load_cv": cv,
        "seconds": round(time.monotonic() - start, 1),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "corpus_tokens": len(ids),
        "chat_template": CHAT_TEMPLATE is not None,
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    return report
