"""Where a learned detector's encoder runs: torch, or ONNX Runtime, in fp32, bf16 or int8.

The name tagger and the sentence embedder are small MiniLM encoders that read every request, so
their cost per text is most of what inspection costs (issue 25). Measured on one core of the
2-core EPYC (Zen 3, AVX2) the suite runs on, one 40-word-piece text through six layers:
torch eager fp32 19.7 ms, ONNX Runtime fp32 13.8 ms with the same outputs (cosine >= 0.99999),
ONNX Runtime int8 (dynamic, per-channel weights) 9.5 ms. The GEMMs run near the core's fp32
peak, so the gain is in what surrounds them (fused kernels, no Python between ops) and, for int8,
in the arithmetic itself. bf16 without matrix units is emulated (the tagger: 67 ms against 11).

`Runner` wraps one choice. `choose(model, probe, names, wanted, what)`:
- `fp32`: the faster of torch and ONNX Runtime, both exact, timed on `probe` at load;
- `bf16`: torch in bf16 (where the CPU has bf16 matrix units, or on CUDA);
- `int8`: ONNX Runtime with int8 weights (a scale per output channel) and activations quantized
  per call: not exact; a detector asks for it only where its left-out figures hold (see the
  detector's module), and the caller can always force `fp32`;
- `auto`: the fastest exact choice (fp32 or bf16) by timing, as before this module.
Where ONNX Runtime is missing or the export fails, the torch path is used and the log says why:
a detector never stops working because an optimization is unavailable.

The ONNX graph is exported from the torch module at load and, for int8, quantized: 2.1 s of the
name tagger's start-up on the EPYC, paid by every worker and every restart. The finished graph is
kept on disk (`graph_cache_dir()`: `BULKHEAD_MODEL_CACHE`, `off` for none; else the user's cache
directory) under a key that covers everything it is made from: the module's weights, the source of
its classes, the export's inputs and options, and the torch and ONNX Runtime versions. A graph read
back must give the module's own outputs on the probe (within int8's error for int8) or it is
rebuilt: a stale or damaged file costs one export, never a wrong answer. Only the int8 quantizer
needs scratch files, in a temporary directory removed at once.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import importlib.metadata
import inspect
import io
import logging
import os
import tempfile
import timeit
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger("bulkhead.models")

PRECISIONS = ("auto", "fp32", "bf16", "int8")


class Runner:
    """A module in eval mode, called on int64 numpy arrays, returning its float32 output as numpy.
    Not thread-safe by itself: the detectors hold a lock around it (one pass at a time uses the
    threads the process has better than two)."""

    def __init__(self, call: Callable[..., np.ndarray], precision: str, engine: str) -> None:
        self._call = call
        self.precision = precision  # fp32, bf16, int8
        self.engine = engine  # torch, onnxruntime

    @property
    def rows_per_call(self) -> int | None:
        """How many rows one call may carry (None: any). int8 quantizes each call's activations with
        one scale over the whole input, padding and other rows included, so a text's result would
        depend on what it was batched with: a request's findings must not depend on its neighbours',
        so int8 runs one unpadded row a call."""
        return 1 if self.precision == "int8" else None

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        return self._call(*inputs)

    def __repr__(self) -> str:
        return f"{self.precision} ({self.engine})"


def _torch():
    import torch  # heavy: imported where a model is first built

    return torch


def torch_runner(model, precision: str = "fp32") -> Runner:
    t = _torch()
    if precision == "bf16":
        model = model.to(t.bfloat16)

    def call(*inputs: np.ndarray) -> np.ndarray:
        with t.inference_mode():
            return model(*(t.from_numpy(np.ascontiguousarray(x)) for x in inputs)).float().numpy()

    return Runner(call, precision, "torch")


def threads() -> int:
    """Intra-op threads for ONNX Runtime: `BULKHEAD_INFERENCE_THREADS` where set (`bulkhead serve
    --workers N` sets it to each worker's share of the cores), else the CPUs this process may run
    on, no more than torch uses (a worker pinned to one core must not start two threads that fight
    over it)."""
    wanted = os.environ.get("BULKHEAD_INFERENCE_THREADS", "").strip()
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    return max(1, min(allowed, _torch().get_num_threads()))


def onnx_runner(model, probe: Sequence[np.ndarray], names: Sequence[str], *, int8: bool,
                table: np.ndarray | None = None) -> Runner:
    """The module exported to ONNX (every axis of every input dynamic) and run by ONNX Runtime on
    the CPU; with `int8`, its MatMul weights quantized per output channel first.

    `table`: the module's word-embedding weights (`model.words`), when they are the package's own,
    frozen. The graph then takes the looked-up word vectors instead of the ids, and the table stays
    outside it: one copy in the process however many encoders read it (ONNX Runtime holds a graph's
    weights two or three times over while it loads; the table is 47 MB of a 56 MB int8 tagger).

    Raises ImportError without onnxruntime, RuntimeError when the export or the session fails."""
    import onnxruntime as ort  # optional at run time: the torch path stands in without it

    path = _cached_graph_path(model, probe, names, int8, table is not None, ort.__version__)
    if path is not None and path.exists():
        try:
            runner = _session_runner(ort, path.read_bytes(), names, int8, table)
            if _agrees(runner, model, probe, int8):
                with contextlib.suppress(OSError):
                    os.utime(path)  # recently used: kept when the cache is pruned
                return runner
            log.warning("cached ONNX graph %s gives other outputs than its module; rebuilding it", path.name)
        except (OSError, RuntimeError) as exc:
            log.warning("cached ONNX graph %s unreadable (%s); rebuilding it", path.name, exc)
    graph = _export(model, probe, names, table)
    if int8:
        graph = _quantize(graph)
    if path is not None:
        _store(path, graph)
    return _session_runner(ort, graph, names, int8, table)


def _export(model, probe: Sequence[np.ndarray], names: Sequence[str], table: np.ndarray | None) -> bytes:
    t = _torch()
    inputs = list(probe)
    words = model.words if table is not None else None
    if words is not None:
        if not np.array_equal(words.weight.detach().numpy(), table):
            raise RuntimeError("the module's word embeddings are not the shared table")
        model.words = t.nn.Identity()  # the first input is then the word vectors themselves
        inputs[0] = table[inputs[0]]
    buf = io.BytesIO()
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    try:
        with warnings.catch_warnings(), t.inference_mode():
            # The TorchScript exporter: the module is plain layers; the dynamo one would cost seconds more.
            warnings.simplefilter("ignore")
            t.onnx.export(model, tuple(t.from_numpy(x) for x in inputs), buf, input_names=list(names),
                          output_names=["out"], dynamic_axes={**axes, "out": {0: "batch"}}, dynamo=False,
                          opset_version=17)
    except Exception as exc:  # any exporter failure: the caller falls back to torch
        raise RuntimeError(f"ONNX export failed ({type(exc).__name__}: {exc})") from exc
    finally:
        if words is not None:
            model.words = words
    return buf.getvalue()


# --- the graph cache -------------------------------------------------------------------------------

CACHE_ENV = "BULKHEAD_MODEL_CACHE"  # a directory for finished ONNX graphs; "off": export at every load
_CACHE_FORMAT = "1"  # bump when what a key covers changes


def graph_cache_dir() -> Path | None:
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw == "off":
        return None
    if raw:
        return Path(raw)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory to be found (a bare container user): export each load
            return None
    return Path(base) / "bulkhead" / "onnx"


def _cached_graph_path(model, probe: Sequence[np.ndarray], names: Sequence[str], int8: bool, table: bool,
                       ort_version: str) -> Path | None:
    """Where this module's finished graph is kept: a hash of everything the graph is made from."""
    directory = graph_cache_dir()
    if directory is None:
        return None
    t = _torch()
    h = hashlib.sha256()
    parts = [_CACHE_FORMAT, t.__version__, ort_version, ",".join(names), f"int8={int8}", f"table={table}",
             ";".join(f"{x.dtype}{x.shape}" for x in probe)]
    if int8:
        parts.append(importlib.metadata.version("onnx"))  # the quantizer rewrites the graph with it
    h.update("|".join(parts).encode())
    # The code: every file that defines one of the module's own (non-torch) classes, whole, so a
    # helper the forward pass calls is covered too.
    sources = sorted({inspect.getsourcefile(type(m)) or "" for m in model.modules()
                      if not type(m).__module__.startswith("torch.")})
    for source in sources:
        h.update(source.encode() + Path(source).read_bytes() if source else b"?")
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return directory / f"{h.hexdigest()[:40]}.onnx"


def _agrees(runner: Runner, model, probe: Sequence[np.ndarray], int8: bool) -> bool:
    """Whether a graph read back computes what the module does on the probe: equal for fp32, within
    int8's rounding (correlation >= 0.99) for int8."""
    got, want = runner(*probe), torch_runner(model)(*probe)
    if got.shape != want.shape or not np.isfinite(got).all():
        return False
    if not int8:
        return bool(np.allclose(got, want, atol=1e-3, rtol=1e-3))
    if np.ptp(want) < 1e-6 or np.ptp(got) < 1e-6:
        # A probe of identical rows has no spread to correlate (the correlation is NaN, and the graph
        # would be rebuilt at every load): within int8's rounding of the values themselves instead.
        return bool(np.allclose(got, want, atol=0.05 * max(1.0, float(np.abs(want).max())), rtol=0.05))
    return bool(np.corrcoef(got.ravel(), want.ravel())[0, 1] >= 0.99)


def _store(path: Path, graph: bytes) -> None:
    """Written whole to a temporary file and renamed into place: a reader never sees half a graph,
    and workers starting together write the same bytes. A cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(graph)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        log.info("ONNX graph cache not written (%s: %s); the next load exports again", type(exc).__name__, exc)
        return
    _prune(path.parent)


CACHE_KEEP = 8  # graphs kept: each upgrade or retrained model adds one (8-45 MB), the old ones go


def _prune(directory: Path) -> None:
    """Keep the CACHE_KEEP most recently used graphs. A process still loading one that goes reads
    nothing and exports instead."""
    with contextlib.suppress(OSError):
        graphs = sorted(directory.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in graphs[CACHE_KEEP:]:
            with contextlib.suppress(OSError):
                old.unlink()


def _session_runner(ort, graph: bytes, names: Sequence[str], int8: bool, table: np.ndarray | None) -> Runner:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise in a server log
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeError(f"ONNX Runtime could not load the graph ({type(exc).__name__})") from exc
    del graph
    release_freed_memory()
    names = list(names)
    first = names[0]

    if table is None:
        def call(*x: np.ndarray) -> np.ndarray:
            return session.run(None, dict(zip(names, x, strict=True)))[0]
    else:
        def call(*x: np.ndarray) -> np.ndarray:
            feed = dict(zip(names, x, strict=True))
            feed[first] = table[feed[first]]
            return session.run(None, feed)[0]

    return Runner(call, "int8" if int8 else "fp32", "onnxruntime")


def release_freed_memory() -> None:
    """Hand the export's and the quantizer's freed buffers back to the system (glibc keeps them in
    its arenas otherwise: ~70 MB of resident memory per worker that no one uses)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _quantize(graph: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # see onnx_runner

    with tempfile.TemporaryDirectory(prefix="bulkhead-onnx-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quiet = _Quiet()  # the quantizer logs advice to the root logger: noise in a server log
        logging.getLogger().addFilter(quiet)
        try:
            # Per-channel weights: per-tensor scales moved the sentence embeddings to cosine 0.95 of
            # fp32, per-channel to 0.99. Only MatMul: quantized embedding tables cost accuracy, not time.
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
        finally:
            logging.getLogger().removeFilter(quiet)
        return dst.read_bytes()


class _Quiet(logging.Filter):
    # The quantizer logs through the root logger ("Quantization parameters for tensor ... not
    # specified", "Ignore MatMul due to non constant B"): while it runs, root's own records are
    # dropped; records of named loggers (ours, other threads') pass.
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root"


def _best_ms(run: Callable[[], object], reps: int = 3) -> float:
    run()  # warm-up: first calls allocate
    return min(timeit.repeat(run, number=1, repeat=reps)) * 1000


def choose(model, probe: Sequence[np.ndarray], names: Sequence[str], wanted: str, what: str,
           table: np.ndarray | None = None) -> Runner:
    """The runner for `model` (eval mode, fp32) by `wanted` (see the module docstring); `table` as
    in `onnx_runner`. Raises ValueError for an unknown `wanted`."""
    if wanted not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {wanted!r}")
    t = _torch()
    if t.cuda.is_available():
        # ONNX Runtime here is the CPU build; on a GPU host torch stays, in bf16 unless fp32 is asked.
        return torch_runner(model, "fp32" if wanted == "fp32" else "bf16")
    candidates: dict[str, Callable[[], Runner]] = {"fp32 (torch)": lambda: torch_runner(model)}
    if wanted in ("auto", "fp32", "int8"):
        candidates["fp32 (onnxruntime)"] = lambda: onnx_runner(model, probe, names, int8=False, table=table)
    if wanted == "int8":
        candidates = {"int8 (onnxruntime)": lambda: onnx_runner(model, probe, names, int8=True, table=table),
                      "fp32 (torch)": candidates["fp32 (torch)"]}
    if wanted in ("auto", "bf16"):
        candidates["bf16 (torch)"] = lambda: torch_runner(copy.deepcopy(model), "bf16")
    built: dict[str, Runner] = {}
    for label, make in candidates.items():
        try:
            built[label] = make()
        except (ImportError, RuntimeError) as exc:
            log.warning("%s: %s unavailable (%s); using the others", what, label, exc)
    if wanted == "int8" and "int8 (onnxruntime)" in built:
        chosen = built["int8 (onnxruntime)"]
        log.info("%s runs in %r", what, chosen)
        return chosen
    if wanted == "bf16" and "bf16 (torch)" in built:
        return built["bf16 (torch)"]
    timings = {label: _best_ms(lambda r=r: r(*probe)) for label, r in built.items()}
    exact = {k: v for k, v in timings.items() if not k.startswith("bf16")}
    label = min(exact, key=exact.get)
    # bf16 rounds activations: taken only where it is clearly faster (CPUs with bf16 matrix units).
    if "bf16 (torch)" in timings and timings["bf16 (torch)"] < 0.85 * timings[label]:
        label = "bf16 (torch)"
    log.info("%s runs in %s (%s)", what, label, ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items()))
    return built[label]
