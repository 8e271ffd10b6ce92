"""Load a Hugging Face MoE checkpoint directory into `model.Transformer`.

Reads `config.json`, one or many `.safetensors` files (through the index when sharded; files are
memory-mapped by safetensors and read tensor by tensor), renames each family's keys to ours, fuses
q/k/v and gate/up projections, and stacks per-expert tensors into one [E, ...] tensor per layer.
Checkpoints already in fused-expert form (`experts.gate_up_proj`) load as is. Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

from local_moe import kernels, native
from local_moe.config import ModelArgs, load_config
from local_moe.model import Transformer

# Mixtral's original names; everything else already uses the Qwen/DeepSeek spelling.
_ALIASES = [
    (re.compile(r"\.block_sparse_moe\."), ".mlp."),
    (re.compile(r"(\.experts\.\d+)\.w1\."), r"\1.gate_proj."),
    (re.compile(r"(\.experts\.\d+)\.w3\."), r"\1.up_proj."),
    (re.compile(r"(\.experts\.\d+)\.w2\."), r"\1.down_proj."),
]


def pick_device(
    device: str | None = None, dtype: str | torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """CUDA + bf16 when a GPU is present; on CPU, bf16 where the CPU has bf16 dot-product
    instructions (`cpu_has_bf16`), else fp32; either can be forced."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(dtype, torch.dtype):
        return dev, dtype
    if dtype:
        return dev, {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    return dev, torch.bfloat16 if dev.type == "cuda" or cpu_has_bf16() else torch.float32


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX: there bf16 decode runs ~3x fp32's speed on our kernels (2.99x
    transformers' fastest dtype against 1.5x in fp32 on a Zen 4, `bench/RESULTS.md`) on half the
    memory, and most checkpoints are stored in bf16 anyway. Without them torch emulates bf16
    and fp32 is faster, so fp32 stays the default there."""
    return bool({"avx512_bf16", "amx_bf16"} & native.cpu_flags())


class CheckpointReader:
    """Tensor lookup across the shards of a checkpoint, by normalized name."""

    def __init__(self, model_dir: Path):
        index = model_dir / "model.safetensors.index.json"
        if index.exists():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        else:
            files = sorted(model_dir.glob("*.safetensors"))
            if not files:
                raise FileNotFoundError(f"no .safetensors files in {model_dir}")
            weight_map = {}
            for f in files:
                with safe_open(str(f), framework="pt") as handle:
                    weight_map.update({k: f.name for k in handle.keys()})  # noqa: SIM118
        self.dir = model_dir
        self.files: dict[str, object] = {}
        self.where: dict[str, tuple[str, str]] = {}
        for key, fname in weight_map.items():
            name = key
            for pattern, repl in _ALIASES:
                name = pattern.sub(repl, name)
            self.where[name] = (fname, key)

    def has(self, name: str) -> bool:
        return name in self.where

    def get(self, name: str) -> torch.Tensor:
        fname, key = self.where[name]
        handle = self.files.get(fname)
        if handle is None:
            handle = safe_open(str(self.dir / fname), framework="pt")
            self.files[fname] = handle
        return handle.get_tensor(key)  # type: ignore[attr-defined]


def _cat(reader: CheckpointReader, names: list[str]) -> torch.Tensor:
    return torch.cat([reader.get(n) for n in names], dim=0)


def _mlp(reader: CheckpointReader, src: str, dst: str, sd: dict[str, torch.Tensor]) -> None:
    sd[f"{dst}.w13.weight"] = _cat(reader, [f"{src}.gate_proj.weight", f"{src}.up_proj.weight"])
    sd[f"{dst}.w2.weight"] = reader.get(f"{src}.down_proj.weight")


def _experts(reader: CheckpointReader, src: str, dst: str, n: int, sd: dict[str, torch.Tensor]) -> None:
    if reader.has(f"{src}.gate_up_proj"):
        sd[f"{dst}.w13"] = reader.get(f"{src}.gate_up_proj")
        sd[f"{dst}.w2"] = reader.get(f"{src}.down_proj")
        return
    sd[f"{dst}.w13"] = torch.stack(
        [_cat(reader, [f"{src}.{e}.gate_proj.weight", f"{src}.{e}.up_proj.weight"]) for e in range(n)]
    )
    sd[f"{dst}.w2"] = torch.stack([reader.get(f"{src}.{e}.down_proj.weight") for e in range(n)])


def _layer(args: ModelArgs, reader: CheckpointReader, i: int) -> dict[str, torch.Tensor]:
    src, dst = f"model.layers.{i}", f"layers.{i}"
    sd = {
        f"{dst}.attn_norm.weight": reader.get(f"{src}.input_layernorm.weight"),
        f"{dst}.mlp_norm.weight": reader.get(f"{src}.post_attention_layernorm.weight"),
    }
    a, at = f"{src}.self_attn", f"{dst}.attn"
    if args.mla:
        renames = {
            "q_proj": "wq",
            "q_a_proj": "wq_a",
            "q_a_layernorm": "q_norm",
            "q_b_proj": "wq_b",
            "kv_a_proj_with_mqa": "wkv_a",
            "kv_a_layernorm": "kv_norm",
            "kv_b_proj": "wkv_b",
            "o_proj": "wo",
        }
        for theirs, ours in renames.items():
            for part in ("weight", "bias"):
                if reader.has(f"{a}.{theirs}.{part}"):
                    sd[f"{at}.{ours}.{part}"] = reader.get(f"{a}.{theirs}.{part}")
    else:
        sd[f"{at}.wqkv.weight"] = _cat(reader, [f"{a}.{p}_proj.weight" for p in "qkv"])
        if args.attention_bias:
            sd[f"{at}.wqkv.bias"] = _cat(reader, [f"{a}.{p}_proj.bias" for p in "qkv"])
        sd[f"{at}.wo.weight"] = reader.get(f"{a}.o_proj.weight")
        if args.o_bias:
            sd[f"{at}.wo.bias"] = reader.get(f"{a}.o_proj.bias")
        if args.qk_norm:
            sd[f"{at}.q_norm.weight"] = reader.get(f"{a}.q_norm.weight")
            sd[f"{at}.k_norm.weight"] = reader.get(f"{a}.k_norm.weight")
    m, mt = f"{src}.mlp", f"{dst}.mlp"
    if not args.moe_layers[i]:
        _mlp(reader, m, mt, sd)
        return sd
    sd[f"{mt}.gate.weight"] = reader.get(f"{m}.gate.weight")
    if args.topk_method == "noaux_tc":
        sd[f"{mt}.gate.bias"] = reader.get(f"{m}.gate.e_score_correction_bias")
    _experts(reader, f"{m}.experts", f"{mt}.experts", args.num_experts, sd)
    if args.shared_expert_size:
        shared = (
            f"{m}.shared_expert" if reader.has(f"{m}.shared_expert.up_proj.weight") else f"{m}.shared_experts"
        )
        _mlp(reader, shared, f"{mt}.shared", sd)
    if args.shared_expert_gate:
        sd[f"{mt}.shared_gate.weight"] = reader.get(f"{m}.shared_expert_gate.weight")
    return sd


def load_model(
    model_dir: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    pack: bool | None = None,
    quantize: str | None = None,
) -> Transformer:
    """An inference model whose matmuls use the kernels `kernels.prepare` chose for this machine
    (`model.kernel_choices` says which). `pack=False` keeps every weight as stored (plain
    `F.linear`), `pack=True` forces oneDNN's packed layout; `quantize="int8"` stores linear and
    expert weights as int8 (CPU only)."""
    if quantize and pack is not None:
        raise ValueError("pack applies to exact weights; int8 weights choose their own kernel")
    model_dir = Path(model_dir)
    args = load_config(model_dir)
    dev, dt = pick_device(str(device) if device is not None else None, dtype)
    reader = CheckpointReader(model_dir)
    with torch.device("meta"):
        model = Transformer(args)
    model.requires_grad_(False)

    def place(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Router weights and DeepSeek's selection bias stay fp32: routing decisions are fragile.
        return {
            k: v.to(device=dev, dtype=torch.float32 if (".gate." in k and args.mla) else dt).contiguous()
            for k, v in sd.items()
        }

    # Layer by layer, so peak host memory is one layer's unfused + fused tensors, not the model's twice.
    for i in range(args.num_layers):
        model.load_state_dict(place(_layer(args, reader, i)), strict=False, assign=True)
    top = {
        "embed.weight": reader.get("model.embed_tokens.weight"),
        "norm.weight": reader.get("model.norm.weight"),
    }
    if reader.has("lm_head.weight") and not args.tie_word_embeddings:
        top["lm_head.weight"] = reader.get("lm_head.weight")
    model.load_state_dict(place(top), strict=False, assign=True)
    if "lm_head.weight" not in top:
        model.lm_head.weight = model.embed.weight
    missing = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.is_meta]
    if missing:
        raise ValueError(f"checkpoint {model_dir} lacks tensors for: {', '.join(missing[:8])}")
    model.eval()
    force = None if pack is None else ("packed" if pack else "linear")
    model.kernel_choices = kernels.prepare(model, quantize=quantize, force=force)
    model.quantize = quantize
    return model
