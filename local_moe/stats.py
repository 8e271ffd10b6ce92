"""Expert-utilization statistics: how evenly each MoE layer spreads tokens over its experts.

For one layer with per-expert token counts c (mean m):
  CV      = std(c) / m                 0 for a perfectly even load
  MaxVio  = (max(c) - m) / m           how overloaded the busiest expert is (DeepSeek-V3's metric)
  entropy = mean over tokens of H(router probabilities) / log(E), in [0, 1]; near 0 means the
            router is confident (or collapsed), near 1 means it spreads probability evenly
  dead    = experts that received no token
"""

from __future__ import annotations

import threading
from typing import Any

import torch


def load_metrics(counts: torch.Tensor) -> dict[str, Any]:
    counts = counts.double()
    mean = counts.mean().item()
    if mean == 0:
        return {"cv": 0.0, "max_vio": 0.0, "dead": []}
    return {
        "cv": round(counts.std(unbiased=False).item() / mean, 4),
        "max_vio": round((counts.max().item() - mean) / mean, 4),
        "dead": [int(i) for i in torch.nonzero(counts == 0).flatten().tolist()],
    }


class LayerCounts:
    """Token counts per expert and summed router entropy per MoE layer; thread-safe to add to."""

    def __init__(self, layers: list[int], num_experts: int):
        self.layers = layers
        self.num_experts = num_experts
        self.counts = torch.zeros(len(layers), num_experts, dtype=torch.float64)
        self.entropy = torch.zeros(len(layers), dtype=torch.float64)
        self.tokens = 0
        self._lock = threading.Lock()

    def add(self, counts: torch.Tensor, entropy: torch.Tensor, tokens: int) -> None:
        with self._lock:
            self.counts += counts.double()
            self.entropy += entropy.double()
            self.tokens += tokens

    def summary(self, per_expert: bool = True) -> dict[str, Any]:
        with self._lock:
            counts, entropy, tokens = self.counts.clone(), self.entropy.clone(), self.tokens
        layers = []
        for i, layer in enumerate(self.layers):
            row = {
                "layer": layer,
                **load_metrics(counts[i]),
                "entropy": round(entropy[i].item() / tokens, 4) if tokens else 0.0,
            }
            if per_expert:
                row["tokens_per_expert"] = [int(c) for c in counts[i].tolist()]
            layers.append(row)
        cvs = [row["cv"] for row in layers]
        return {
            "tokens": tokens,
            "num_experts": self.num_experts,
            "moe_layers": len(self.layers),
            "mean_cv": round(sum(cvs) / len(cvs), 4) if cvs else 0.0,
            "max_cv": max(cvs) if cvs else 0.0,
            "max_vio": max((row["max_vio"] for row in layers), default=0.0),
            "dead_experts": sum(len(row["dead"]) for row in layers),
            "mean_entropy": round(sum(r["entropy"] for r in layers) / len(layers), 4) if layers else 0.0,
            "layers": layers,
        }

    def compact(self) -> dict[str, Any]:
        """The few numbers an audit row carries."""
        s = self.summary(per_expert=False)
        return {k: s[k] for k in ("tokens", "mean_cv", "max_cv", "max_vio", "dead_experts", "mean_entropy")}
