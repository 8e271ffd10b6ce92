"""Kernel choice at load (local_moe/kernels.py): measured once per machine and shape, cached, forced
where asked; int8 weights stay close to exact and never touch routers."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from local_moe import kernels
from local_moe.kernels import EXACT, INT8, KernelLinear, available, choose, quantize_int8
from local_moe.loader import load_model
from local_moe.runtime import open_engine
from local_moe.sampling import SamplingParams
from tests.local_moe.tiny import build

CPU = torch.device("cpu")
PROMPT = [5, 6, 7, 8, 9, 10, 11, 12, 13]


@pytest.fixture
def cache_file(tmp_path, monkeypatch):
    path = tmp_path / "kernels.json"
    monkeypatch.setenv(kernels.CACHE_ENV, str(path))
    return path


def test_choice_is_measured_once_then_read_from_the_cache(cache_file):
    shapes = {(48, 32): 3, (32, 16): 2}
    first = choose(shapes, CPU, torch.float32)
    usable = [k for k in EXACT if available(k, CPU, torch.float32)]
    for shape, choice in first.items():
        assert choice.kind in usable and choice.sites == shapes[shape]
        if len(usable) > 1:
            assert choice.source == "measured"
            # every candidate was timed at both decode sizes and the prefill size
            assert set(choice.timings_ms) == set(usable)
            assert all(set(t) == {"1", "8", "512"} for t in choice.timings_ms.values())
    if len(usable) > 1:
        saved = json.loads(cache_file.read_text())
        assert len(saved) == 2 and all(torch.__version__ in key for key in saved)
        again = choose(shapes, CPU, torch.float32)
        assert {s: c.kind for s, c in again.items()} == {s: c.kind for s, c in first.items()}
        assert all(c.source == "cached" for c in again.values())


def test_a_corrupt_cache_is_measured_again(cache_file):
    cache_file.write_text("{not json")
    got = choose({(16, 16): 1}, CPU, torch.float32)
    assert got[(16, 16)].kind in EXACT


def test_force_picks_one_kernel_everywhere(tmp_path):
    build("qwen3_moe", tmp_path, seed=5)
    plain = load_model(tmp_path, device="cpu", dtype="float32", pack=False)
    assert not any(isinstance(m, KernelLinear) for m in plain.modules())
    kinds = [c for c in plain.kernel_choices if not isinstance(c, kernels.DispatchChoice)]
    assert kinds and all(c.kind == "linear" and c.source == "forced" for c in kinds)
    if available("packed", CPU, torch.float32):
        packed = load_model(tmp_path, device="cpu", dtype="float32", pack=True)
        layers = [m for m in packed.modules() if isinstance(m, KernelLinear)]
        assert layers and all(m.kind == "packed" for m in layers)
        assert all(b.mlp.gate.kernel is not None for b in packed.layers if b.is_moe)
    with pytest.raises(ValueError, match="unknown kernel"):
        kernels.candidates(CPU, torch.float32, None, force="fastest")


def test_stacked_experts_get_a_measured_dispatch_crossover(tmp_path, cache_file):
    build("qwen3_moe", tmp_path / "ckpt", seed=7)
    plain = load_model(tmp_path / "ckpt", device="cpu", dtype="float32", pack=False)
    dispatch = [c for c in plain.kernel_choices if isinstance(c, kernels.DispatchChoice)]
    assert len(dispatch) == 1 and dispatch[0].source == "measured"
    assert set(dispatch[0].timings_ms) == {"grouped", "slices"}
    layers = [b.mlp.experts for b in plain.layers if b.is_moe]
    assert all(e.grouped_min_rows == dispatch[0].grouped_min_rows for e in layers)
    assert "dispatch: grouped_mm" in dispatch[0].describe()
    again = load_model(tmp_path / "ckpt", device="cpu", dtype="float32", pack=False)
    cached = [c for c in again.kernel_choices if isinstance(c, kernels.DispatchChoice)]
    assert cached[0].source == "cached" and cached[0].grouped_min_rows == dispatch[0].grouped_min_rows
    # whichever mode the crossover picks, the answer is the same
    ids = torch.tensor([PROMPT * 6])  # 54 tokens: rows on both sides of most crossovers
    for e in layers:
        e.grouped_min_rows = 1
    with torch.no_grad():
        grouped = plain(ids)
    for e in layers:
        e.grouped_min_rows = 2**31
    with torch.no_grad():
        assert (plain(ids) - grouped).abs().max().item() < 1e-4


@pytest.mark.parametrize("kind", INT8)
def test_int8_kernels_compute_the_quantized_product(kind):
    if not available(kind, CPU, torch.bfloat16):
        pytest.skip(f"{kind} does not run here")
    torch.manual_seed(0)
    w, b = torch.randn(40, 64), torch.randn(40)
    x = torch.randn(2, 3, 64)
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    dequant = q.float() * scale[:, None]
    assert (dequant - w).abs().max() <= scale.max() / 2 + 1e-6  # rounding, at most half a step
    got = KernelLinear(w, b, kind)(x)
    assert got.shape == (2, 3, 40)
    want = F.linear(x, dequant, b)
    # weight-only: only the weight was rounded; dynamic also rounds the input rows to 7 bits
    tol = 1e-4 if kind == "int8-weight" else 3e-2
    assert (got - want).norm() <= tol * want.norm()


def test_int8_model_stays_close_to_exact_and_keeps_routers_exact(tmp_path):
    if not any(available(k, CPU, torch.bfloat16) for k in INT8):
        pytest.skip("no int8 kernel runs here")
    build("qwen3_moe", tmp_path, seed=6)
    exact = load_model(tmp_path, device="cpu", dtype="bfloat16")
    quant = load_model(tmp_path, device="cpu", dtype="bfloat16", quantize="int8")
    assert quant.quantize == "int8"
    assert isinstance(quant.lm_head, KernelLinear) and quant.lm_head.kind in INT8
    for block in quant.layers:
        if block.is_moe:
            assert all(w13.kind in INT8 and w2.kind in INT8 for w13, w2 in block.mlp.experts.kernels)
            router = block.mlp.gate.kernel
            assert router is None or router.kind in EXACT
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        a, b = exact(ids).float(), quant(ids).float()
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


def test_int8_is_refused_where_no_kernel_runs():
    with pytest.raises(ValueError, match="int8 weights need a CPU kernel"):
        kernels.candidates(torch.device("meta"), torch.bfloat16, "int8")
    with pytest.raises(ValueError, match="unknown quantization"):
        kernels.candidates(CPU, torch.bfloat16, "int4")
    with pytest.raises(ValueError, match="pack applies to exact weights"):
        load_model("unused", device="cpu", dtype="bfloat16", pack=True, quantize="int8")


async def test_engine_serves_int8_weights(tiny_checkpoint):
    if not any(available(k, CPU, torch.bfloat16) for k in INT8):
        pytest.skip("no int8 kernel runs here")
    engine = open_engine(tiny_checkpoint, device="cpu", dtype="bfloat16", quantize="int8")
    try:
        assert engine.model.quantize == "int8"
        assert any(c.kind in INT8 for c in engine.model.kernel_choices)
        ids = engine.tokenizer.encode_chat([{"role": "user", "content": "experts route tokens"}])
        result = await engine.complete(ids, SamplingParams(max_tokens=8, temperature=0, ignore_eos=True))
        assert result.completion_tokens == 8
    finally:
        engine.close()


def test_no_home_directory_means_no_cache_not_a_crash(monkeypatch):
    monkeypatch.delenv(kernels.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(kernels.Path, "home", staticmethod(no_home))
    assert kernels._cache_path() is None
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/lib/bulkhead/cache")
    assert str(kernels._cache_path()) == "/var/lib/bulkhead/cache/bulkhead/moe-kernels.json"
