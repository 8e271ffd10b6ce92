"""Tiny random checkpoints of every supported family, built with transformers (a test dependency only)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COMMON = dict(
    vocab_size=96,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=256,
    initializer_range=0.2,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def family_configs():
    import transformers as tf

    return {
        "qwen3_moe": (
            tf.Qwen3MoeConfig,
            tf.Qwen3MoeForCausalLM,
            dict(
                num_key_value_heads=2,
                head_dim=16,
                intermediate_size=96,
                moe_intermediate_size=32,
                num_experts=8,
                num_experts_per_tok=2,
                norm_topk_prob=True,
                mlp_only_layers=[1],
            ),
        ),
        "qwen2_moe": (
            tf.Qwen2MoeConfig,
            tf.Qwen2MoeForCausalLM,
            dict(
                num_key_value_heads=2,
                intermediate_size=96,
                moe_intermediate_size=32,
                shared_expert_intermediate_size=48,
                num_experts=8,
                num_experts_per_tok=3,
                norm_topk_prob=False,
            ),
        ),
        "mixtral": (
            tf.MixtralConfig,
            tf.MixtralForCausalLM,
            dict(num_key_value_heads=2, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2),
        ),
        "olmoe": (
            tf.OlmoeConfig,
            tf.OlmoeForCausalLM,
            dict(
                num_key_value_heads=4,
                intermediate_size=32,
                num_experts=8,
                num_experts_per_tok=2,
                clip_qkv=3.0,
            ),
        ),
        "deepseek_v2": (
            tf.DeepseekV2Config,
            tf.DeepseekV2ForCausalLM,
            dict(
                num_key_value_heads=4,
                intermediate_size=96,
                moe_intermediate_size=32,
                n_routed_experts=8,
                num_experts_per_tok=3,
                n_shared_experts=1,
                kv_lora_rank=24,
                q_lora_rank=None,
                qk_rope_head_dim=8,
                qk_nope_head_dim=16,
                v_head_dim=16,
                first_k_dense_replace=1,
                topk_method="group_limited_greedy",
                n_group=4,
                topk_group=2,
                routed_scaling_factor=1.5,
            ),
        ),
        "deepseek_v3": (
            tf.DeepseekV3Config,
            tf.DeepseekV3ForCausalLM,
            dict(
                num_key_value_heads=4,
                intermediate_size=96,
                moe_intermediate_size=32,
                n_routed_experts=8,
                num_experts_per_tok=2,
                n_shared_experts=1,
                kv_lora_rank=24,
                q_lora_rank=32,
                qk_rope_head_dim=8,
                qk_nope_head_dim=16,
                v_head_dim=16,
                first_k_dense_replace=1,
                n_group=4,
                topk_group=2,
                routed_scaling_factor=2.5,
                rope_interleave=True,
            ),
        ),
    }


def build(family: str, out: Path, seed: int = 0, **overrides):
    """Save a random `family` model under `out`; returns the transformers model (fp32, eval)."""
    config_cls, model_cls, extra = family_configs()[family]
    torch.manual_seed(seed)
    config = config_cls(**(COMMON | extra | overrides))
    model = model_cls(config).eval()
    if family == "deepseek_v3":  # a non-zero selection bias, so the test sees it change routing
        for layer in model.model.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.copy_(
                torch.randn_like(layer.mlp.gate.e_score_correction_bias)
            )
    model.save_pretrained(out)
    return model
