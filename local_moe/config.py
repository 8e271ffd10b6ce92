"""One normalized description of a MoE checkpoint, read from a Hugging Face `config.json`.

Each family names the same ideas differently (`num_experts`, `num_local_experts`, `n_routed_experts`)
and routes differently; the model code reads only this dataclass, so the per-family knowledge lives
here and in `moe.Router`, nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FAMILIES = ("qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "deepseek_v2", "deepseek_v3")


@dataclass
class ModelArgs:
    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # width of dense (non-MoE) MLP layers
    moe_intermediate_size: int  # width of one routed expert
    num_experts: int
    top_k: int
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # bias on q/k/v (and o for olmoe/deepseek when set)
    o_bias: bool = False
    qk_norm: str | None = None  # "head" (qwen3: per head) or "full" (olmoe: over all heads)
    clip_qkv: float | None = None
    # routing
    scoring: str = "softmax"  # "softmax" or "sigmoid"
    norm_topk_prob: bool = False
    routed_scaling_factor: float = 1.0
    topk_method: str = "greedy"  # "greedy", "group_limited_greedy" (V2), "noaux_tc" (V3)
    n_group: int = 1
    topk_group: int = 1
    # which layers are MoE
    moe_layers: list[bool] = field(default_factory=list)
    # shared experts
    shared_expert_size: int = 0  # 0 means none
    shared_expert_gate: bool = False  # qwen2_moe: sigmoid-gated shared expert
    # MLA (deepseek)
    mla: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    rope_interleave: bool = False  # deepseek pairs (x0, x1) instead of halves
    # rope
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    dtype: torch.dtype = torch.float32
    bos_token_id: int | None = None
    eos_token_ids: list[int] = field(default_factory=list)
    pad_token_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def rope_dim(self) -> int:
        return self.qk_rope_head_dim if self.mla else self.head_dim

    @property
    def attn_scale(self) -> float:
        qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim if self.mla else self.head_dim
        scale = qk_dim**-0.5
        # DeepSeek scales attention by mscale^2 under YaRN (transformers `yarn_apply_mscale`).
        rs = self.rope_scaling or {}
        if self.mla and rs.get("rope_type", "default") != "default" and rs.get("mscale_all_dim"):
            m = _yarn_mscale(rs["factor"], rs["mscale_all_dim"])
            scale *= m * m
        return scale


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _eos_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _rope(raw: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    params = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind in (None, "default"):
        return theta, None
    if kind not in ("yarn", "linear"):
        raise ValueError(f"unsupported rope scaling {kind!r}")
    params["rope_type"] = kind
    params.setdefault("original_max_position_embeddings", raw.get("max_position_embeddings", 4096))
    return theta, params


def _num_experts(raw: dict[str, Any]) -> int:
    for key in ("num_experts", "num_local_experts", "n_routed_experts"):
        if raw.get(key) is not None:
            return int(raw[key])
    raise ValueError("config.json names no expert count")


def parse_config(raw: dict[str, Any]) -> ModelArgs:
    family = raw.get("model_type", "")
    if family not in FAMILIES:
        raise ValueError(f"unsupported model_type {family!r}; supported: {', '.join(FAMILIES)}")
    n_layers = int(raw["num_hidden_layers"])
    heads = int(raw["num_attention_heads"])
    hidden = int(raw["hidden_size"])
    theta, scaling = _rope(raw)
    dtype_name = raw.get("dtype") or raw.get("torch_dtype") or "float32"
    common: dict[str, Any] = dict(
        family=family,
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=n_layers,
        num_heads=heads,
        num_kv_heads=int(raw.get("num_key_value_heads") or heads),
        head_dim=int(raw.get("head_dim") or hidden // heads),
        intermediate_size=int(raw.get("intermediate_size", 0)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        hidden_act=raw.get("hidden_act", "silu"),
        max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope_theta=theta,
        rope_scaling=scaling,
        dtype=_DTYPES.get(str(dtype_name), torch.float32),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_ids=_eos_list(raw.get("eos_token_id")),
        pad_token_id=raw.get("pad_token_id"),
        raw=raw,
    )
    if raw.get("use_sliding_window") or (family == "mixtral" and raw.get("sliding_window")):
        raise ValueError("sliding-window attention is not supported")

    if family in ("qwen3_moe", "qwen2_moe"):
        mlp_only = set(raw.get("mlp_only_layers") or [])
        step = int(raw.get("decoder_sparse_step", 1))
        n_exp = _num_experts(raw)
        moe = [(i not in mlp_only) and n_exp > 0 and (i + 1) % step == 0 for i in range(n_layers)]
        args = ModelArgs(
            **common,
            moe_intermediate_size=int(raw["moe_intermediate_size"]),
            num_experts=n_exp,
            top_k=int(raw["num_experts_per_tok"]),
            norm_topk_prob=bool(raw.get("norm_topk_prob", family == "qwen3_moe")),
            moe_layers=moe,
        )
        if family == "qwen3_moe":
            args.attention_bias = args.o_bias = bool(raw.get("attention_bias", False))
            args.qk_norm = "head"
        else:
            args.attention_bias = bool(raw.get("qkv_bias", True))
            args.shared_expert_size = int(raw.get("shared_expert_intermediate_size", 0))
            args.shared_expert_gate = True
        return args

    if family == "mixtral":
        return ModelArgs(
            **common | {"intermediate_size": 0},
            moe_intermediate_size=int(raw["intermediate_size"]),
            num_experts=_num_experts(raw),
            top_k=int(raw["num_experts_per_tok"]),
            norm_topk_prob=True,
            moe_layers=[True] * n_layers,
        )

    if family == "olmoe":
        bias = bool(raw.get("attention_bias", False))
        return ModelArgs(
            **common,
            moe_intermediate_size=int(raw["intermediate_size"]),
            num_experts=_num_experts(raw),
            top_k=int(raw["num_experts_per_tok"]),
            norm_topk_prob=bool(raw.get("norm_topk_prob", False)),
            moe_layers=[True] * n_layers,
            attention_bias=bias,
            o_bias=bias,
            qk_norm="full",
            clip_qkv=raw.get("clip_qkv"),
        )

    # deepseek_v2 / deepseek_v3: MLA, shared experts, first-k dense layers
    first_dense = int(raw.get("first_k_dense_replace") or 0)
    freq = int(raw.get("moe_layer_freq") or 1)
    n_routed = _num_experts(raw)
    v3 = family == "deepseek_v3"
    bias = bool(raw.get("attention_bias", False))
    args = ModelArgs(
        **common | {"head_dim": int(raw["qk_rope_head_dim"])},
        moe_intermediate_size=int(raw["moe_intermediate_size"]),
        num_experts=n_routed,
        top_k=int(raw["num_experts_per_tok"]),
        # transformers' DeepseekV2 router never renormalizes; V3 follows `norm_topk_prob`.
        norm_topk_prob=bool(raw.get("norm_topk_prob", True)) if v3 else False,
        routed_scaling_factor=float(raw.get("routed_scaling_factor", 1.0)),
        scoring="sigmoid" if v3 else "softmax",
        topk_method="noaux_tc" if v3 else str(raw.get("topk_method") or "greedy"),
        n_group=int(raw.get("n_group") or 1),
        topk_group=int(raw.get("topk_group") or 1),
        moe_layers=[i >= first_dense and i % freq == 0 for i in range(n_layers)],
        shared_expert_size=int(raw.get("n_shared_experts") or 0) * int(raw["moe_intermediate_size"]),
        mla=True,
        q_lora_rank=raw.get("q_lora_rank"),
        kv_lora_rank=int(raw["kv_lora_rank"]),
        qk_nope_head_dim=int(raw["qk_nope_head_dim"]),
        qk_rope_head_dim=int(raw["qk_rope_head_dim"]),
        v_head_dim=int(raw["v_head_dim"]),
        rope_interleave=bool(raw.get("rope_interleave", True)) if v3 else True,
        attention_bias=bias,
        o_bias=bias,
    )
    if args.topk_method not in ("greedy", "group_limited_greedy", "noaux_tc"):
        raise ValueError(f"unsupported topk_method {args.topk_method!r}")
    return args


def load_config(model_dir: str | Path) -> ModelArgs:
    raw = json.loads((Path(model_dir) / "config.json").read_text())
    return parse_config(raw)
