"""The verifier's training plumbing that a wrong answer would poison silently: the cache of the
frozen layers' outputs (`training/grounding/fit.py`)."""

from __future__ import annotations

from gateway import minilm
from gateway.hallucination import verifier
from gateway.hallucination.verifier import pair_ids
from training.grounding import fit


class FakeLower:
    """Stands in for the frozen layers: each output is filled with the frozen depth it ran at."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def eval(self):
        return self

    def lower(self, ids, types, attention):
        torch = minilm.torch()
        self.calls.append(verifier.FROZEN)
        return torch.full((*ids.shape, minilm.HIDDEN), float(verifier.FROZEN))


def test_frozen_outputs_are_cached_per_pairs_and_depth(tmp_path, monkeypatch):
    model, pairs = FakeLower(), [pair_ids([5, 6], [7, 8]), pair_ids([9], [7])]
    first = fit._cached_lower(model, pairs, tmp_path, "src")
    again = fit._cached_lower(model, pairs, tmp_path, "src")  # read back from disk
    assert model.calls == [verifier.FROZEN]
    assert [h.shape for h in again] == [h.shape for h in first] == [(7, minilm.HIDDEN), (5, minilm.HIDDEN)]
    # one more trainable layer: the same pairs must not be served the shallower outputs
    monkeypatch.setattr(verifier, "FROZEN", verifier.FROZEN - 1)
    deeper = fit._cached_lower(model, pairs, tmp_path, "src")
    assert model.calls == [verifier.FROZEN + 1, verifier.FROZEN]
    assert float(deeper[0][0, 0]) == verifier.FROZEN != float(first[0][0, 0])
