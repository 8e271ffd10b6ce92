"""A MoE decoder-only transformer covering Qwen3-MoE, Qwen2-MoE, Mixtral, OLMoE and DeepSeek-V2/V3.

One forward signature serves training (no cache, causal), prefill and decode (cache slots, see
`cache.Step`). Numerics follow the transformers reference: RMSNorm in fp32 then cast, rotary
tables cast to the activation dtype, attention softmax in fp32 (SDPA does this internally).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from local_moe import native
from local_moe.cache import Step
from local_moe.config import ModelArgs
from local_moe.moe import MLP, MoE, RoutingRecord


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        # set by kernels.prepare on bf16 CPU inference models where the native kernels run: one
        # call instead of eight tensor ops, four times a layer at decode
        self.native = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native and x.dtype == torch.bfloat16:
            return native.rmsnorm_bf16(x, self.weight, self.eps)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_frequencies(args: ModelArgs) -> tuple[torch.Tensor, float]:
    """Inverse frequencies and the cos/sin scale (YaRN's attention factor), as transformers computes them."""
    dim = args.rope_dim
    base = args.rope_theta
    exps = torch.arange(0, dim, 2, dtype=torch.float32) / dim
    inv_freq = 1.0 / (base**exps)
    rs = args.rope_scaling
    if rs is None:
        return inv_freq, 1.0
    factor = float(rs["factor"])
    if rs["rope_type"] == "linear":
        return inv_freq / factor, 1.0
    # YaRN
    orig = int(rs["original_max_position_embeddings"])

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attn_factor = rs.get("attention_factor")
    if attn_factor is None:
        m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
        attn_factor = mscale(factor, m) / mscale(factor, m_all) if m and m_all else mscale(factor)
    beta_fast = rs.get("beta_fast") or 32
    beta_slow = rs.get("beta_slow") or 1

    def corr_dim(rot: float) -> float:
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp
    inv_freq = (inv_freq / factor) * (1 - extrapolation) + inv_freq * extrapolation
    return inv_freq, float(attn_factor)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleave: bool) -> torch.Tensor:
    """x [B, T, heads, D]; cos/sin [B, T, 1, D/2]."""
    if interleave:
        # DeepSeek rotates pairs (x0, x1), (x2, x3), ...; emitting evens then odds changes the layout
        # of q and k identically, so dot products are unchanged (transformers does the same).
        x1, x2 = x[..., 0::2], x[..., 1::2]
    else:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    """Grouped-query attention with q/k/v fused into one projection."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.n_heads, self.n_kv, self.head_dim = args.num_heads, args.num_kv_heads, args.head_dim
        q, kv = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        self.split = (q, kv, kv)
        self.wqkv = nn.Linear(args.hidden_size, q + 2 * kv, bias=args.attention_bias)
        self.wo = nn.Linear(q, args.hidden_size, bias=args.o_bias)
        if args.qk_norm == "head":
            self.q_norm = RMSNorm(self.head_dim, args.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, args.rms_norm_eps)
        elif args.qk_norm == "full":
            self.q_norm = RMSNorm(q, args.rms_norm_eps)
            self.k_norm = RMSNorm(kv, args.rms_norm_eps)
        self.native = False  # set like RMSNorm.native: decode attention in one native call

    def _fits(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor) -> bool:
        # the native decode call rotates whole heads and reads each row's heads as one run
        rows = all(x.stride(3) == 1 and x.stride(2) == self.head_dim for x in (q, k, v))
        return rows and cos.shape[-1] * 2 == self.head_dim and cos.dtype == torch.bfloat16

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, step: Step | None, layer: int
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.wqkv(x).split(self.split, dim=-1)
        if self.args.qk_norm == "full":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.args.clip_qkv is not None:
            c = self.args.clip_qkv
            q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
        q = q.view(b, t, self.n_heads, self.head_dim)
        k = k.view(b, t, self.n_kv, self.head_dim)
        v = v.view(b, t, self.n_kv, self.head_dim)
        if self.args.qk_norm == "head":
            q, k = self.q_norm(q), self.k_norm(k)
        if step is not None and t == 1 and self.native and q.dtype == torch.bfloat16 and self._fits(q, k, v, cos):
            # decode: rotation, cache writes and attention in two native calls, not ~20 tensor ops
            ck, cv = step.cache.k[layer], step.cache.v[layer]
            q1 = native.rope_cache_decode_bf16(q, k, v, cos, sin, ck, cv, step.slot_t, step.pos_idx)
            out = native.attention_decode_bf16(q1, ck, cv, step.slot_t, step.mask.view(b, -1), self.args.attn_scale)
            return self.wo(out.reshape(b, 1, -1))
        q = apply_rope(q, cos, sin, False).transpose(1, 2)
        k = apply_rope(k, cos, sin, False)
        scale = self.args.attn_scale
        gqa = self.n_kv != self.n_heads
        if step is None:
            out = F.scaled_dot_product_attention(
                q, k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=scale, enable_gqa=gqa
            )
        else:
            ck, cv = step.cache.k[layer], step.cache.v[layer]
            # cache layout [slot, head, pos, dim]: advanced indices around a slice put [B, T] first
            ck[step.slot_idx, :, step.pos_idx] = k
            cv[step.slot_idx, :, step.pos_idx] = v
            if t == 1 and self.native and q.dtype == torch.bfloat16:
                # decode: one native call reads each row's slot in place (no gather, no mask
                # expansion); the library's attention costs ~100 us a call here even for a short cache
                out = native.attention_decode_bf16(q[:, :, 0], ck, cv, step.slot_t, step.mask.view(b, -1), scale)
                return self.wo(out.reshape(b, 1, -1))
            keys = step.rows(ck[:, :, : step.length])
            values = step.rows(cv[:, :, : step.length])
            out = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=step.mask, scale=scale, enable_gqa=gqa
            )
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class MLAttention(nn.Module):
    """DeepSeek multi-head latent attention, computed in the compressed space ("absorbed" weights).

    Keys and values are never materialized per head: the query's no-position part is folded through
    kv_b_proj's key half into the latent space, attention runs as single-KV-head attention over the
    cached [latent | rotary key] rows, and the result is projected out through the value half.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        h = args.num_heads
        self.n_heads = h
        self.nope, self.rope, self.vdim = args.qk_nope_head_dim, args.qk_rope_head_dim, args.v_head_dim
        self.lora = args.kv_lora_rank
        qk = self.nope + self.rope
        if args.q_lora_rank is None:
            self.wq = nn.Linear(args.hidden_size, h * qk, bias=False)
        else:
            self.wq_a = nn.Linear(args.hidden_size, args.q_lora_rank, bias=args.attention_bias)
            self.q_norm = RMSNorm(args.q_lora_rank)  # eps 1e-6 regardless of rms_norm_eps, as upstream
            self.wq_b = nn.Linear(args.q_lora_rank, h * qk, bias=False)
        self.wkv_a = nn.Linear(args.hidden_size, self.lora + self.rope, bias=args.attention_bias)
        self.kv_norm = RMSNorm(self.lora)
        self.wkv_b = nn.Linear(self.lora, h * (self.nope + self.vdim), bias=False)
        self.wo = nn.Linear(h * self.vdim, args.hidden_size, bias=args.o_bias)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, step: Step | None, layer: int
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x) if self.args.q_lora_rank is None else self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(b, t, self.n_heads, self.nope + self.rope)
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin, self.args.rope_interleave)
        kv, k_pe = self.wkv_a(x).split([self.lora, self.rope], dim=-1)
        k_pe = apply_rope(k_pe.unsqueeze(2), cos, sin, self.args.rope_interleave).squeeze(2)
        latent = torch.cat([self.kv_norm(kv), k_pe], dim=-1)  # [B, T, lora + rope]
        wkv_b = self.wkv_b.weight.view(self.n_heads, self.nope + self.vdim, self.lora)
        q_lat = torch.einsum("bthd,hdc->bhtc", q_nope, wkv_b[:, : self.nope])
        query = torch.cat([q_lat, q_pe.transpose(1, 2)], dim=-1)  # [B, h, T, lora + rope]
        if step is None:
            keys = latent.unsqueeze(1)
            mask, causal = None, True
        else:
            cache = step.cache.latent[layer]
            cache[step.slot_idx, step.pos_idx] = latent
            keys = step.rows(cache[:, : step.length]).unsqueeze(1)
            mask, causal = step.mask, False
        out = F.scaled_dot_product_attention(
            query,
            keys,
            keys[..., : self.lora],
            attn_mask=mask,
            is_causal=causal,
            scale=self.args.attn_scale,
            enable_gqa=True,
        )
        out = torch.einsum("bhtc,hdc->bthd", out, wkv_b[:, self.nope :])
        return self.wo(out.reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, args: ModelArgs, layer: int):
        super().__init__()
        self.layer = layer
        self.attn = MLAttention(args) if args.mla else Attention(args)
        self.is_moe = args.moe_layers[layer]
        self.mlp: nn.Module = (
            MoE(args) if self.is_moe else MLP(args.hidden_size, args.intermediate_size, args.hidden_act)
        )
        self.attn_norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.mlp_norm = RMSNorm(args.hidden_size, args.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        step: Step | None,
        record: RoutingRecord | None,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, step, self.layer)
        h = self.mlp_norm(x)
        return x + (self.mlp(h, record) if self.is_moe else self.mlp(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = nn.ModuleList(Block(args, i) for i in range(args.num_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        self.inv_freq: torch.Tensor | None = None
        self.rope_scale = 1.0
        self.kernel_choices: list = []  # set by the loader: which matmul kernel each weight shape uses
        self.quantize: str | None = None

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

    def rope_tables(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq is None or self.inv_freq.device != positions.device:
            inv_freq, self.rope_scale = rope_frequencies(self.args)
            self.inv_freq = inv_freq.to(positions.device)
        freqs = positions[..., None].float() * self.inv_freq
        cos = (freqs.cos() * self.rope_scale).to(dtype)
        sin = (freqs.sin() * self.rope_scale).to(dtype)
        return cos.unsqueeze(2), sin.unsqueeze(2)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        step: Step | None = None,
        record: RoutingRecord | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V] (or [B, V] with `last_only`)."""
        if positions is None:
            if step is None:
                positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
            else:
                positions = step.pos_idx
        x = self.embed(tokens)
        cos, sin = self.rope_tables(positions, x.dtype)
        for block in self.layers:
            x = block(x, cos, sin, step, record)
        if last_only:
            x = x[:, -1]
        return self.lm_head(self.norm(x))
