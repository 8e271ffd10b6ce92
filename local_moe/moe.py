"""Routing and expert dispatch.

The router reproduces each family's selection rule exactly (softmax vs sigmoid scoring, group-limited
selection, which families renormalize the top-k weights, DeepSeek's routed scaling factor).

Dispatch never loops over tokens: token-expert pairs are sorted by expert so each expert's tokens
sit in one contiguous block, then either `torch.nn.functional.grouped_mm` runs all experts as one
grouped GEMM, or a loop over the (few) experts that got tokens runs one GEMM per contiguous slice.
Which wins depends on the number of rows and the machine: `kernels.prepare` times both on the
checkpoint's own experts at load and sets each layer's `grouped_min_rows` (cached per machine);
`DISPATCH_GROUPED_MIN_ROWS_CPU` is the default where nothing was measured, and `bench/moe.py
--dispatch` prints the whole curve.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from local_moe import native
from local_moe.config import ModelArgs
from local_moe.kernels import NATIVE, KernelLinear, expert_rows

# Measured with `bench/moe.py --dispatch` (qwen3_moe layer: hidden 1024, 32 experts, top-4, width 512;
# 2-core AMD EPYC, fp32): at decode sizes (4-16 rows) both modes read the same expert weights and tie
# within noise (0.90 vs 0.95 ms at 4 rows); from 32 rows grouped_mm is ahead and at prefill size
# (2048 rows) it wins 10x (54 vs 554 ms). On CUDA, bf16 grouped_mm is always used.
DISPATCH_GROUPED_MIN_ROWS_CPU = 32
DISPATCH_MODE: str = "auto"  # "auto", "grouped" or "slices": the bench overrides it to compare


def activation(name: str):
    if name in ("silu", "swish"):
        return F.silu
    if name == "gelu":
        return F.gelu
    raise ValueError(f"unsupported activation {name!r}")


class Router(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.weight = nn.Parameter(torch.empty(args.num_experts, args.hidden_size))
        # DeepSeek-V3's aux-loss-free balancing bias: changes which experts are chosen, never the weights.
        self.register_buffer(
            "bias", torch.zeros(args.num_experts) if args.topk_method == "noaux_tc" else None
        )
        self.kernel: KernelLinear | None = None

    def kernel_shapes(self) -> list[tuple[tuple[int, int], int, bool]]:
        # DeepSeek routers run in fp32 on purpose (below): they keep F.linear. Routers are never int8.
        return [] if self.args.mla else [(tuple(self.weight.shape), 1, False)]

    def use_kernels(self, kind_of) -> None:
        kind = kind_of(tuple(self.weight.shape), False) if not self.args.mla else "linear"
        self.kernel = KernelLinear(self.weight, None, kind) if kind != "linear" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, H] -> (weights [N, k], experts [N, k], probabilities [N, E] for statistics)."""
        a = self.args
        # DeepSeek routers run in fp32 whatever the model dtype
        if a.mla:
            logits = F.linear(x.float(), self.weight.float())
        else:
            logits = self.kernel(x) if self.kernel is not None else F.linear(x, self.weight)
        if a.scoring == "sigmoid":
            scores = logits.sigmoid()
            choice = scores + self.bias
            if a.n_group > 1:
                per_group = choice.view(-1, a.n_group, a.num_experts // a.n_group)
                group_scores = per_group.topk(2, dim=-1)[0].sum(dim=-1)
                choice = _mask_groups(choice, group_scores, a.topk_group, float("-inf"))
            idx = torch.topk(choice, a.top_k, dim=-1, sorted=False)[1]
            weights = scores.gather(1, idx)
            if a.norm_topk_prob:
                weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
            probs = scores / scores.sum(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(logits.float(), dim=-1)
            scores = probs
            if a.topk_method == "group_limited_greedy":
                group_scores = probs.view(-1, a.n_group, a.num_experts // a.n_group).amax(dim=-1)
                scores = _mask_groups(probs, group_scores, a.topk_group, 0.0)
            if a.mla:
                weights, idx = torch.topk(scores, a.top_k, dim=-1, sorted=False)
            else:
                weights, idx = torch.topk(scores, a.top_k, dim=-1)
            if a.norm_topk_prob:
                weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * a.routed_scaling_factor if a.mla else weights
        return weights.to(x.dtype) if not a.mla else weights, idx, probs


def _mask_groups(scores: torch.Tensor, group_scores: torch.Tensor, keep: int, fill: float) -> torch.Tensor:
    n_group = group_scores.shape[-1]
    group_idx = torch.topk(group_scores, k=keep, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1.0).bool()
    score_mask = (
        group_mask.unsqueeze(-1).expand(-1, n_group, scores.shape[-1] // n_group).reshape(scores.shape)
    )
    return scores.masked_fill(~score_mask, fill)


class Experts(nn.Module):
    """All routed experts of a layer as two fused tensors: w13 [E, 2I, H] (gate rows then up rows)
    and w2 [E, H, I], the layout of a linear layer's weight per expert.

    For inference, `kernels.prepare` may give each expert's two weights another kernel (oneDNN
    packed, int8): the stacked tensors are then replaced by one kernel-held weight per expert (memory
    does not grow) and dispatch always takes the per-expert path. With the `linear` kernel the
    stacked tensors stay, so prefill can run all experts as one `grouped_mm`.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        e, h, i = args.num_experts, args.hidden_size, args.moe_intermediate_size
        self.num_experts = e
        self.inter = i
        self.top_k = args.top_k
        # CPU rows (tokens x top-k) from which one grouped_mm beats per-expert GEMMs (kernels.prepare)
        self.grouped_min_rows = DISPATCH_GROUPED_MIN_ROWS_CPU
        self.dispatch: str | None = None  # "grouped" or "slices" pins this layer's mode (kernels.py times both)
        self.w13 = nn.Parameter(torch.empty(e, 2 * i, h))
        self.w2 = nn.Parameter(torch.empty(e, h, i))
        self.act = activation(args.hidden_act)
        self.act_name = args.hidden_act
        self.kernels: list[tuple[KernelLinear, KernelLinear]] | None = None
        self.fused: native.FusedExperts | None = None  # decode-sized calls in one native call

    def kernel_shapes(self) -> list[tuple[tuple[int, int], int, bool, tuple[int, ...]]]:
        if self.kernels is not None:
            return []
        rows = expert_rows(self.num_experts, self.top_k)
        return [(tuple(w.shape[1:]), self.num_experts, True, rows) for w in (self.w13, self.w2)]

    def use_kernels(self, kind_of) -> None:
        rows = expert_rows(self.num_experts, self.top_k)
        # one kind for both weights (kernels.prepare's kind_of over several shapes)
        kind = kind_of((tuple(self.w13.shape[1:]), tuple(self.w2.shape[1:])), True, rows)
        if kind == "linear":
            return
        self.kernels = [
            (KernelLinear(self.w13[e], None, kind), KernelLinear(self.w2[e], None, kind))
            for e in range(self.num_experts)
        ]
        del self.w13, self.w2  # the kernels' copies replace them
        if kind in NATIVE and self.top_k <= native.MAX_ROWS:
            self.fused = native.FusedExperts(self.kernels, self.act_name)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e's SwiGLU on rows x [n, H]."""
        if self.kernels is None:
            h = F.linear(x, self.w13[e])
            return F.linear(self.act(h[:, : self.inter]) * h[:, self.inter :], self.w2[e])
        w13, w2 = self.kernels[e]
        h = w13(x)
        return w2(self.act(h[:, : self.inter]) * h[:, self.inter :])

    def forward(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        n, k = idx.shape
        forced = self.dispatch or DISPATCH_MODE
        if self.fused is not None and n <= native.MAX_ROWS and forced == "auto":
            # decode: all of the layer's experts for these tokens in one call, no per-expert ops
            return self.fused(x, weights, idx).to(x.dtype)
        if n == 1 and forced == "auto" and not x.is_cuda:
            # One token (batch-1 decode): its k experts are distinct, so the sort/gather/scatter below
            # would only add a dozen small ops per layer; sum the k expert outputs directly. (Not on
            # CUDA: reading the expert ids on the host would stall the stream.)
            w = weights[0].to(x.dtype)
            out = None
            for j, e in enumerate(idx[0].tolist()):
                y = self.expert(e, x) * w[j]
                out = y if out is None else out + y
            return out
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token = order // k
        counts = torch.bincount(flat, minlength=self.num_experts)
        xs = x[token]
        rows = n * k
        mode = forced
        if self.kernels is not None:
            mode = "slices"  # kernel-held weights exist per expert only; there is no stacked tensor to group
        elif mode == "auto":
            # CUDA grouped_mm kernels want bf16; other CUDA dtypes take the slice path
            grouped = x.dtype == torch.bfloat16 if x.is_cuda else rows >= self.grouped_min_rows
            mode = "grouped" if grouped else "slices"
        if mode == "grouped":
            offs = torch.cumsum(counts, 0, dtype=torch.int32)
            h = F.grouped_mm(xs, self.w13.transpose(1, 2), offs=offs)
            h = self.act(h[:, : self.inter]) * h[:, self.inter :]
            out = F.grouped_mm(h, self.w2.transpose(1, 2), offs=offs)
        else:
            out = torch.empty_like(xs)
            begin = 0
            for e, c in enumerate(counts.tolist()):
                if c == 0:
                    continue
                end = begin + c
                out[begin:end] = self.expert(e, xs[begin:end])
                begin = end
        out = out * weights.reshape(-1)[order, None].to(out.dtype)
        return torch.zeros_like(x).index_add_(0, token, out.to(x.dtype))


class MLP(nn.Module):
    """A dense SwiGLU MLP with gate and up projections fused into one matrix."""

    def __init__(self, hidden: int, inter: int, act: str):
        super().__init__()
        self.inter = inter
        self.w13 = nn.Linear(hidden, 2 * inter, bias=False)
        self.w2 = nn.Linear(inter, hidden, bias=False)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w13(x)
        return self.w2(self.act(h[..., : self.inter]) * h[..., self.inter :])


class RoutingRecord:
    """Per-row routing counts and router entropy gathered during one forward call."""

    def __init__(self) -> None:
        self.counts: list[torch.Tensor] = []  # per MoE layer: [B, E] tokens routed
        self.entropy: list[torch.Tensor] = []  # per MoE layer: [B] summed normalized entropy
        self.row_mask: torch.Tensor | None = None  # [B, T] which tokens are real (not padding)


class MoE(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.gate = Router(args)
        self.experts = Experts(args)
        self.shared = (
            MLP(args.hidden_size, args.shared_expert_size, args.hidden_act)
            if args.shared_expert_size
            else None
        )
        self.shared_gate = nn.Linear(args.hidden_size, 1, bias=False) if args.shared_expert_gate else None

    def forward(self, x: torch.Tensor, record: RoutingRecord | None = None) -> torch.Tensor:
        b, t, h = x.shape
        flat = x.reshape(-1, h)
        weights, idx, probs = self.gate(flat)
        out = self.experts(flat, weights, idx)
        if self.shared is not None:
            shared = self.shared(flat)
            if self.shared_gate is not None:
                shared = torch.sigmoid(self.shared_gate(flat)) * shared
            out = out + shared
        if record is not None:
            self._record(record, idx.view(b, t, -1), probs.view(b, t, -1))
        return out.view(b, t, h)

    @torch.no_grad()
    def _record(self, record: RoutingRecord, idx: torch.Tensor, probs: torch.Tensor) -> None:
        b, t, k = idx.shape
        n_exp = self.args.num_experts
        ones = torch.ones(b, t * k, device=idx.device, dtype=torch.float32)
        if record.row_mask is not None:
            ones = ones * record.row_mask.to(torch.float32).repeat_interleave(k, dim=1)
        counts = torch.zeros(b, n_exp, device=idx.device, dtype=torch.float32).scatter_add_(
            1, idx.reshape(b, t * k), ones
        )
        p = probs.float().clamp_min(1e-12)
        ent = -(p * p.log()).sum(-1) / torch.log(torch.tensor(float(n_exp)))
        if record.row_mask is not None:
            ent = ent * record.row_mask.to(ent.dtype)
        record.counts.append(counts)
        record.entropy.append(ent.sum(-1))
