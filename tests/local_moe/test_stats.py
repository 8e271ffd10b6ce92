from __future__ import annotations

import math

import pytest
import torch

from local_moe.stats import LayerCounts, load_metrics


def test_even_load_has_zero_cv():
    m = load_metrics(torch.tensor([10.0, 10.0, 10.0, 10.0]))
    assert m == {"cv": 0.0, "max_vio": 0.0, "dead": []}


def test_collapsed_load():
    m = load_metrics(torch.tensor([40.0, 0.0, 0.0, 0.0]))
    assert m["cv"] == pytest.approx(math.sqrt(3), abs=1e-4)
    assert m["max_vio"] == pytest.approx(3.0)
    assert m["dead"] == [1, 2, 3]


def test_layer_counts_accumulate_and_summarize():
    lc = LayerCounts([1, 3], 4)
    lc.add(torch.tensor([[2.0, 2, 2, 2], [8, 0, 0, 0]]), torch.tensor([3.0, 0.5]), 4)
    lc.add(torch.tensor([[2.0, 2, 2, 2], [0, 8, 0, 0]]), torch.tensor([1.0, 0.5]), 4)
    s = lc.summary()
    assert s["tokens"] == 8
    assert s["layers"][0]["tokens_per_expert"] == [4, 4, 4, 4] and s["layers"][0]["cv"] == 0
    assert s["layers"][1]["dead"] == [2, 3] and s["dead_experts"] == 2
    assert s["layers"][0]["entropy"] == pytest.approx(0.5)
    assert set(lc.compact()) == {"tokens", "mean_cv", "max_cv", "max_vio", "dead_experts", "mean_entropy"}
