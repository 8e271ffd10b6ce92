"""Where an encoder runs: ONNX Runtime fp32 gives torch's outputs, int8 stays close, a missing
ONNX Runtime falls back to torch, and an unknown precision is refused."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from gateway import encoder_runtime, minilm


def small_encoder():
    torch = minilm.torch()
    Layer = minilm.layer_class()

    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = torch.nn.Embedding(500, minilm.HIDDEN)
            self.layer = Layer()
            self.head = torch.nn.Linear(minilm.HIDDEN, 7)

        def forward(self, ids, attention):
            x = self.words(ids)
            return self.head(self.layer(x, minilm.key_mask(attention, x.dtype)))

    torch.manual_seed(0)
    return Small().eval()


def inputs(batch: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch * 100 + n)
    ids = rng.integers(1, 500, size=(batch, n)).astype(np.int64)
    attention = np.ones_like(ids)
    attention[0, n // 2 :] = 0  # padding in the first row
    return ids, attention


def reference(model, ids, attention) -> np.ndarray:
    return encoder_runtime.torch_runner(model)(ids, attention)


def test_onnx_fp32_matches_torch_at_every_shape():
    model = small_encoder()
    run = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    assert (run.precision, run.engine) == ("fp32", "onnxruntime")
    for batch, n in ((1, 3), (4, 40), (2, 130)):  # shapes other than the export's
        x = inputs(batch, n)
        assert np.allclose(run(*x), reference(model, *x), atol=1e-4)


def test_int8_is_close_but_labelled_as_not_exact():
    model = small_encoder()
    run = encoder_runtime.choose(model, inputs(1, 16), ("ids", "attention"), "int8", "test encoder")
    assert repr(run) == "int8 (onnxruntime)"
    x = inputs(3, 24)
    got, want = run(*x), reference(model, *x)
    assert not np.array_equal(got, want)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def test_fp32_and_auto_choose_an_exact_runner():
    model = small_encoder()
    for wanted in ("fp32", "auto"):
        run = encoder_runtime.choose(model, inputs(1, 16), ("ids", "attention"), wanted, "test encoder")
        x = inputs(2, 10)
        if run.precision == "fp32":
            assert np.allclose(run(*x), reference(model, *x), atol=1e-4)
        else:  # auto may take bf16 on a CPU with bf16 matrix units
            assert run.precision == "bf16"


def test_without_onnxruntime_the_torch_path_serves(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    model = small_encoder()
    run = encoder_runtime.choose(model, inputs(1, 16), ("ids", "attention"), "int8", "test encoder")
    assert repr(run) == "fp32 (torch)"
    assert "unavailable" in caplog.text


def test_bf16_unavailable_falls_back_to_an_exact_runner(monkeypatch, caplog):
    real = encoder_runtime.torch_runner

    def no_bf16(model, precision="fp32"):
        if precision == "bf16":
            raise RuntimeError("no bf16 kernels on this machine")
        return real(model, precision)

    monkeypatch.setattr(encoder_runtime, "torch_runner", no_bf16)
    run = encoder_runtime.choose(small_encoder(), inputs(1, 16), ("ids", "attention"), "bf16", "test encoder")
    assert run.precision == "fp32"
    assert "bf16 (torch) unavailable" in caplog.text


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp8"):
        encoder_runtime.choose(small_encoder(), inputs(1, 4), ("ids", "attention"), "fp8", "test encoder")


def test_int8_runs_one_row_a_call_so_results_never_depend_on_the_batch():
    model = small_encoder()
    int8 = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=True)
    fp32 = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    assert int8.rows_per_call == 1 and fp32.rows_per_call is None


def test_a_shared_word_table_stays_outside_the_graph_and_must_be_the_modules_own():
    model = small_encoder()
    table = model.words.weight.detach().numpy().copy()
    run = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False, table=table)
    x = inputs(3, 20)
    assert np.allclose(run(*x), reference(model, *x), atol=1e-4)
    assert isinstance(model.words, minilm.torch().nn.Embedding)  # the module is given back as it was
    with pytest.raises(RuntimeError, match="shared table"):
        encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False, table=table + 1)


def test_the_package_word_table_is_what_every_encoder_starts_from():
    from gateway.risk.embeddings import build_module

    assert np.array_equal(build_module().words.weight.detach().numpy(), minilm.word_table())


def test_workers_share_the_cores_for_inference(monkeypatch):
    from gateway.cli import share_cores

    monkeypatch.delenv("BULKHEAD_INFERENCE_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    share_cores(1)
    assert "BULKHEAD_INFERENCE_THREADS" not in __import__("os").environ
    share_cores(2)
    assert encoder_runtime.threads() == 2
    monkeypatch.setenv("BULKHEAD_INFERENCE_THREADS", "3")
    share_cores(4)  # an operator's setting stands
    assert encoder_runtime.threads() == 3


def test_a_finished_graph_is_kept_and_read_back_without_exporting(tmp_path, monkeypatch):
    monkeypatch.setenv(encoder_runtime.CACHE_ENV, str(tmp_path))
    model = small_encoder()
    first = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=True)
    kept = list(tmp_path.glob("*.onnx"))
    assert len(kept) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph was kept")

    monkeypatch.setattr(encoder_runtime, "_export", no_export)
    again = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=True)
    x = inputs(1, 24)[0][:1], np.ones((1, 24), dtype=np.int64)
    assert np.array_equal(again(*x), first(*x))


def test_an_int8_check_of_outputs_without_spread_compares_values_not_correlation(monkeypatch):
    # Outputs that are all equal have no correlation to measure (NaN): the check once failed on
    # them and rebuilt the graph at every load.
    want = np.full((4, 1), 0.7, dtype=np.float32)
    monkeypatch.setattr(encoder_runtime, "torch_runner", lambda model: lambda *x: want)
    assert encoder_runtime._agrees(lambda *x: want + 0.01, None, (), int8=True)
    assert not encoder_runtime._agrees(lambda *x: want + 1.0, None, (), int8=True)


def test_the_grounding_verifier_reads_its_kept_int8_graph_back(tmp_path, monkeypatch, caplog):
    from gateway.hallucination.verifier import Verifier

    monkeypatch.setenv(encoder_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("BULKHEAD_VERIFIER_PRECISION", raising=False)
    first = Verifier()
    assert repr(first.runner) == "int8 (onnxruntime)"
    monkeypatch.setattr(encoder_runtime, "_export", lambda *a, **k: pytest.fail("exported again"))
    Verifier()
    assert "gives other outputs" not in caplog.text


def test_other_weights_or_precision_get_their_own_graph(tmp_path, monkeypatch):
    monkeypatch.setenv(encoder_runtime.CACHE_ENV, str(tmp_path))
    model = small_encoder()
    encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=True)
    minilm.torch().nn.init.normal_(model.head.weight)
    changed = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    assert len(list(tmp_path.glob("*.onnx"))) == 3
    x = inputs(2, 12)
    assert np.allclose(changed(*x), reference(model, *x), atol=1e-4)


def test_a_damaged_or_foreign_graph_is_rebuilt_not_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(encoder_runtime.CACHE_ENV, str(tmp_path))
    model, other = small_encoder(), small_encoder()
    minilm.torch().nn.init.normal_(other.head.weight)
    encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    (path,) = tmp_path.glob("*.onnx")
    # another module's graph under this module's key: read back, it disagrees with the module
    path.write_bytes(encoder_runtime._export(other, inputs(1, 16), ("ids", "attention"), None))
    run = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    x = inputs(2, 12)
    assert np.allclose(run(*x), reference(model, *x), atol=1e-4)
    assert "gives other outputs" in caplog.text
    path.write_bytes(b"not a graph")
    run = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)
    assert np.allclose(run(*x), reference(model, *x), atol=1e-4)
    assert "unreadable" in caplog.text
    again = encoder_runtime.onnx_runner(model, inputs(1, 16), ("ids", "attention"), int8=False)  # rewritten
    assert np.allclose(again(*x), reference(model, *x), atol=1e-4)


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(encoder_runtime.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    encoder_runtime.onnx_runner(small_encoder(), inputs(1, 16), ("ids", "attention"), int8=False)
    assert encoder_runtime.graph_cache_dir() is None and not any(tmp_path.rglob("*.onnx"))


def test_the_cache_keeps_the_most_recently_used_graphs(tmp_path, monkeypatch):
    monkeypatch.setenv(encoder_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(encoder_runtime, "CACHE_KEEP", 2)
    models = [small_encoder() for _ in range(3)]
    for i, m in enumerate(models):
        minilm.torch().nn.init.constant_(m.head.bias, float(i))
    encoder_runtime.onnx_runner(models[0], inputs(1, 16), ("ids", "attention"), int8=False)
    first = next(tmp_path.glob("*.onnx"))
    os.utime(first, (1, 1))  # long unused
    encoder_runtime.onnx_runner(models[1], inputs(1, 16), ("ids", "attention"), int8=False)
    encoder_runtime.onnx_runner(models[0], inputs(1, 16), ("ids", "attention"), int8=False)  # used again
    encoder_runtime.onnx_runner(models[2], inputs(1, 16), ("ids", "attention"), int8=False)
    kept = set(tmp_path.glob("*.onnx"))
    assert len(kept) == 2 and first in kept
