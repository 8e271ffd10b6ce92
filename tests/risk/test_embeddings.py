from __future__ import annotations

from pathlib import Path

import numpy as np

from gateway.risk.embeddings import Embedder, model_path


def test_model_is_bundled():
    assert (model_path() / "model.safetensors").is_file()


def test_unit_rows_and_semantics(embedder):
    v = embedder.encode(
        ["How do I bake bread?", "What is a recipe for sourdough?", "Quarterly tax filing rules"]
    )
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_serves_repeats_without_the_model(embedder):
    e = Embedder(cache_size=2)
    e._model = embedder.model  # share the loaded weights
    a = e.encode(["alpha", "beta", "alpha"])
    assert e.misses == 2 and np.array_equal(a[0], a[2])
    e.encode(["alpha"])
    assert e.hits == 1
    e.encode(["gamma"])  # evicts the least recently used ("beta")
    e.encode(["beta"])
    assert e.misses == 4


def _reference():
    return np.load(Path(__file__).parent / "data" / "sentence_transformers_reference.npz")


def test_vectors_are_sentence_transformers_own():
    """Our layers over the package's weights, in fp32, give the vectors sentence-transformers gave
    (computed with it once, committed: `sentence_transformers_reference.npz`), long texts cut as it
    cuts them."""
    ref = _reference()
    ours = Embedder(cache_size=0, precision="fp32").encode([str(t) for t in ref["texts"]])
    assert np.min(np.sum(ours * ref["vectors"], axis=1)) > 0.9999


def test_the_running_precision_stays_close_to_the_reference(embedder):
    """Whatever the gateway runs by default (int8 weights are not exact) stays near those vectors."""
    ref = _reference()
    ours = embedder.encode([str(t) for t in ref["texts"]])
    assert np.min(np.sum(ours * ref["vectors"], axis=1)) > 0.97  # int8 here: 0.987 (2026-12-06)
