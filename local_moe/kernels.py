"""Matmul kernels for inference weights, chosen where the runtime runs.

A decode step multiplies one row (or a few) by every weight it touches, so CPU decode speed is how
fast a matmul kernel streams weights from memory, and which kernel streams fastest is a property
of the CPU, not of the runtime. oneDNN's blocked ("packed") layout beat stock `F.linear` by 1.5-3x
on a 2-core AMD EPYC; on a 2-core Intel Xeon with AMX it wins by ~1.4x in bf16, while in fp32
`F.linear` is faster at one row and packed at eight. So at load `choose` times the candidate
kernels on this machine for each weight shape the checkpoint has, at decode sizes (1 and 8 rows)
and at a prefill size (512 rows), keeps the fastest at decode (the sum of the two decode times:
decode streams weights and is where serving spends its time; the prefill timings are logged, not
used, since keeping a second layout for prefill would double the weights' memory), caches the
decision per CPU model, torch version, thread count, dtype and shape, and logs what it chose.

Exact kernels, for the checkpoint's dtype (bf16/fp32):
- `linear`: `F.linear` on the weight as stored; the only one on CUDA. Experts keep their stacked
  tensors, so many rows can run as one `grouped_mm`: on CPU `choose_dispatch` times grouped_mm
  against per-expert GEMMs on the layer's own weights and sets the row count from which grouped
  wins (cached like the kernels).
- `packed`: the weight reordered once into oneDNN's blocked layout (`_linear_pointwise`); matches
  `F.linear` bitwise in bf16 and to ~1e-7 relative in fp32.
- `native`: bf16 only. Our own decode kernel (`native.py`, compiled on this machine): each output is
  one weight row read front to back in fp32 sums, rounded once to bf16, so it differs from
  `F.linear` only in summation order (about one bf16 rounding step in a few outputs). The weight
  stays as stored; calls of more than 8 rows (prefill) go to `F.linear` on it.

int8 weights (`quantize="int8"`, CPU only): symmetric per-output-channel scales, half of bf16's
bytes per token; routers and gates stay exact. Four kernels read them:
- `int8-weight`: `aten._weight_int8pack_mm`; activations stay in the model dtype (weight-only).
- `int8-dynamic`: fbgemm's dynamic int8 linear (x86): each call also rounds its input rows to 7
  bits with one scale per call, so it is less exact; on the Xeon above it is the only int8 kernel
  that streams faster than bf16 (`int8-weight` is slower than packed bf16 at eight rows).
- `int8-native`: `native`'s kernel over int8 weights, the row scale applied to the fp32 sum. With
  AVX-512 VNNI each call's activation rows become 16-bit fixed point, one scale per row (a
  rounding below a bf16 step for every element within 1/128 of its row's largest), and int8 x
  int16 products are formed exactly in int32; without VNNI the products are formed exactly from
  the bf16 activations (weight-only, like `int8-weight`). `native.int8_activations()` says which.
  More than 8 rows dequantize the weight to bf16 for one `F.linear`.
- `int8-mixed` (dense weights only: attention, lm_head, dense MLPs): both layouts, `int8-native`'s
  for one-row calls (batch-1 decode), fbgemm's dynamic kernel for more rows, where its u8*s8 dot
  products do twice the work per instruction that ours can from 16-bit activations. Dense weights
  are a small part of an MoE's (54 of 456 MB int8 in the bench checkpoint), so the second copy is
  cheap there; a routed expert keeps one layout (`EXPERT_FORM`).
All are candidates and the fastest wins, like the exact kernels; `bench/moe.py` reports each one's
top-1 agreement with exact mode. `BULKHEAD_MOE_KERNELS=int8-weight` keeps activations exact.

A kernel-held weight is inference-only: autograd does not reach packed or int8 weights and they
cannot move devices.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from local_moe import native

log = logging.getLogger("local_moe.kernels")

EXACT = ("linear", "packed", "native")
INT8 = ("int8-weight", "int8-dynamic", "int8-native", "int8-mixed")
NATIVE = ("native", "int8-native")
# Dense weights only (attention, lm_head, dense MLPs): int8-mixed keeps two int8 layouts. A routed
# expert keeps one, so where int8-mixed is forced, experts take int8-native.
EXPERT_FORM = {"int8-mixed": "int8-native"}
KERNELS_ENV = "BULKHEAD_MOE_KERNELS"  # a kind name forces it everywhere it applies; default "auto"
CACHE_ENV = "BULKHEAD_MOE_KERNEL_CACHE"  # where decisions are cached; "off" disables the cache
WORKING_SET_ENV = "BULKHEAD_MOE_KERNEL_WORKING_SET_MB"
# Each candidate is timed cycling over copies of its weight that total this many bytes, so the
# weights come from memory as in a real decode step, not from a cache that holds one copy.
DEFAULT_WORKING_SET_MB = 256
DECODE_ROWS = (1, 8)
PREFILL_ROWS = 512


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """[out, in] linear weight -> oneDNN blocked layout (a copy; the original can be freed)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None)


# resolved once: looking an op up through torch.ops costs a few microseconds a call
_LINEAR_POINTWISE = torch.ops.mkldnn._linear_pointwise
_INT8_WEIGHT = torch.ops.aten._weight_int8pack_mm
_INT8_DYNAMIC = torch.ops.quantized.linear_dynamic


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (q [out, in] int8, scale [out] fp32), weight ~= q * scale."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)
    return (w / scale[:, None]).round_().clamp_(-127, 127).to(torch.int8), scale


def _smoke(kind: str, dtype: torch.dtype) -> bool:
    try:
        with torch.no_grad():
            # a native kernel gets 200 inputs: its unrolled steps, its 32-wide steps and a masked tail
            k = 200 if kind in NATIVE else 16
            w = torch.randn(24, k).to(dtype)
            x = torch.randn(3, k).to(dtype)
            got, ref = KernelLinear(w, None, kind)(x).float(), F.linear(x, w).float()
            if kind in INT8:  # rounding error, not a broken kernel: a few percent of the output's norm
                return bool((got - ref).norm() <= 0.05 * ref.norm())
            return torch.allclose(got, ref, rtol=1e-2, atol=1e-2)
    except Exception:  # an op missing or unsupported on this build/CPU: not a candidate here
        return False


@functools.cache
def available(kind: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether kernel `kind` works here: the device and dtype it serves, and a tiny product that
    matches `F.linear`."""
    if kind == "linear":
        return True
    if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16):
        return False
    if kind == "packed" and not (torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()):
        return False
    if kind in NATIVE and (dtype != torch.bfloat16 or native.library() is None):
        return False  # the native kernels read and write bf16; fp32 models keep the library kernels
    if kind == "int8-mixed":  # both of its layouts' kernels must run
        return available("int8-native", device, dtype) and available("int8-dynamic", device, dtype)
    if kind == "int8-dynamic" and "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    return _smoke(kind, dtype)


def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    return available("packed", device, dtype)


class KernelLinear(nn.Module):
    """An inference linear layer holding its weight in the form kernel `kind` reads."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, kind: str):
        super().__init__()
        self.kind = kind
        self.out_features, self.in_features = weight.shape
        self.dtype = weight.dtype
        self.bias = bias  # a plain attribute (or the original parameter): never trained here
        # plain attributes, not parameters or buffers: they are not the checkpoint's tensors
        if kind == "linear":
            self.weight = weight
        elif kind == "packed":
            self.packed = pack_weight(weight)
        elif kind == "native":
            if weight.dtype != torch.bfloat16:
                raise ValueError(f"the native kernel reads bf16 weights, not {weight.dtype}")
            self.weight = weight.detach().contiguous()
        elif kind == "int8-weight":
            q, scale = quantize_int8(weight)
            self.q, self.scale = q, scale.to(weight.dtype)
        elif kind == "int8-native":
            self.q, self.scale = quantize_int8(weight)  # scales stay fp32: applied to the fp32 sums
        elif kind in ("int8-dynamic", "int8-mixed"):
            q, scale = quantize_int8(weight)
            if kind == "int8-mixed":  # one-row calls read these with the native kernel
                self.q, self.scale = q, scale
            with warnings.catch_warnings(), _engine("fbgemm"):
                # torch 2.13 marks quantized tensors deprecated; if a later torch drops them, the
                # smoke test in `available` fails and the chooser keeps to `int8-weight`
                warnings.simplefilter("ignore", UserWarning)
                zero = torch.zeros_like(scale, dtype=torch.long)
                qw = torch.quantize_per_channel(q.float() * scale[:, None], scale.double(), zero, 0, torch.qint8)
                self.packed = torch.ops.quantized.linear_prepack(qw, None)
        else:
            raise ValueError(f"unknown kernel {kind!r}")
        runs = {"linear": self._linear, "packed": self._packed, "native": self._native, "int8-native": self._native}
        self._run = runs.get(kind, self._mixed if kind == "int8-mixed" else self._int8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # dispatch is per call and a decode step makes ~80 of them: the kind's method was bound at init
        return self._run(x)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def _packed(self, x: torch.Tensor) -> torch.Tensor:
        return _LINEAR_POINTWISE(x.contiguous(), self.packed, self.bias, "none", [], "")

    def _native(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > native.MAX_ROWS or rows.shape[0] == 0:
            # prefill: a library GEMM on the weight as held (int8 dequantized for the call)
            w = self.weight if self.kind == "native" else (self.q.to(self.dtype) * self.scale[:, None].to(self.dtype))
            return F.linear(x, w, self.bias)
        rows = rows.to(torch.bfloat16).contiguous()
        native_kind = self.kind == "native"
        y = native.gemv_bf16(rows, self.weight) if native_kind else native.gemv_int8(rows, self.q, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def _mixed(self, x: torch.Tensor) -> torch.Tensor:
        # one row (batch-1 decode): ours reads the weight faster; more rows: fbgemm's u8*s8 dot
        # products do twice the work per instruction that ours can from bf16 activations
        if x.numel() == self.in_features:
            return self._native(x)
        return self._int8(x)

    def _int8(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:  # the int8 ops take [rows, in]
            return self._int8(x.reshape(-1, self.in_features)).view(*x.shape[:-1], self.out_features)
        if self.kind == "int8-weight":
            y = _INT8_WEIGHT(x.to(self.dtype).contiguous(), self.q, self.scale)
        else:
            # reduce_range: 7-bit activations, so the VNNI-less u8*s8 pair sums cannot saturate
            y = _INT8_DYNAMIC(x.float() if x.dtype != torch.float32 else x.contiguous(), self.packed, True)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, kernel={self.kind}"


class _engine:
    """Temporarily select a quantized engine (prepacking reads the global setting)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        self.previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = self.name

    def __exit__(self, *exc: object) -> None:
        torch.backends.quantized.engine = self.previous


@dataclass
class Choice:
    """What was chosen for one weight shape and why."""

    shape: tuple[int, int]
    kind: str
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> size -> ms per call
    source: str = "measured"  # "measured", "cached", "forced" or "only candidate"
    sites: int = 0
    rows: tuple[int, ...] = DECODE_ROWS  # the decode row counts whose summed times decided

    def describe(self) -> str:
        shape = f"{self.shape[0]}x{self.shape[1]}"
        if self.rows != DECODE_ROWS:
            shape += f" (experts, decided at {' / '.join(map(str, self.rows))} rows)"
        if not self.timings_ms:
            return f"{shape} ({self.sites} weights): {self.kind} ({self.source})"
        sizes, cells = _timing_cells(self.timings_ms, 3)
        return f"{shape} ({self.sites} weights): {self.kind} ({self.source}; ms per call at {sizes} rows: {cells})"


def _timing_cells(timings_ms: dict[str, dict[str, float]], digits: int) -> tuple[str, str]:
    """("1 / 8 / 512", "linear 0.1 / 0.2 / 0.3; packed ...") from {candidate: {size: ms}}."""
    cells = "; ".join(
        f"{k} " + " / ".join(f"{v:.{digits}f}" for v in t.values()) for k, t in timings_ms.items()
    )
    return " / ".join(next(iter(timings_ms.values()))), cells


@functools.cache
def _cpu_name() -> str:
    name = native.cpuinfo("model name")
    if name:
        return name
    import platform  # only where /proc/cpuinfo is missing (macOS, Windows)

    return platform.processor() or platform.machine()


def _machine_key(dtype: torch.dtype) -> str:
    """What a timing depends on besides the shape: CPU model, torch version, threads, dtype."""
    return (
        f"{_cpu_name()}|torch {torch.__version__}|threads {torch.get_num_threads()}|"
        f"{str(dtype).replace('torch.', '')}"
    )


def _cache_path() -> Path | None:
    raw = os.environ.get(CACHE_ENV)
    if raw == "off":
        return None
    if raw:
        return Path(raw)
    home = native.cache_home()  # None without a home directory (a bare container user): measure each load
    return home / "bulkhead" / "moe-kernels.json" if home is not None else None


def _load_cache(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a corrupt cache only costs a re-measure


def _save_cache(path: Path | None, data: dict) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError as exc:  # a read-only home still serves; it just measures again next time
        log.warning("kernel choices not cached at %s: %s", path, exc)


def _best_ms(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` timed calls of fn, in ms, after one untimed call (first calls build
    oneDNN primitives and fill caches)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def time_kernels(
    shape: tuple[int, int],
    dtype: torch.dtype,
    kinds: list[str],
    working_set_mb: float | None = None,
    rows: tuple[int, ...] = DECODE_ROWS,
) -> dict[str, dict[str, float]]:
    """ms per call of each kernel for an [out, in] weight at the decode sizes and the prefill size."""
    mb = working_set_mb or float(os.environ.get(WORKING_SET_ENV, DEFAULT_WORKING_SET_MB))
    out_f, in_f = shape
    gen = torch.Generator().manual_seed(0)
    base = (torch.randn(out_f, in_f, generator=gen) * 0.02).to(dtype)
    bytes_each = base.numel() * base.element_size()
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        # int8 copies are half the size: keep the bytes streamed per pass the same for every kind
        per = bytes_each // 2 if kind in INT8 else bytes_each
        copies = max(2, min(256, int(mb * 2**20 // max(per, 1))))
        layers = [KernelLinear(base.clone(), None, kind) for _ in range(copies)]
        timings = {}
        with torch.inference_mode():
            for size in (*rows, PREFILL_ROWS):
                x = torch.randn(size, in_f, generator=gen).to(dtype)
                use = layers if size in rows else layers[:1]

                def run(use=use, x=x) -> None:
                    for layer in use:
                        layer(x)

                timings[str(size)] = _best_ms(run) / len(use)
        results[kind] = timings
        del layers
    return results


def candidates(
    device: torch.device, dtype: torch.dtype, quantize: str | None, force: str = "auto"
) -> list[str]:
    """The kernels that work here for exact or int8 weights; `force` (a kind) narrows them to it
    where it applies (an int8 kind does not apply to exact weights, nor `packed` to int8)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r} (choose int8)")
    if force != "auto" and force not in EXACT + INT8:
        raise ValueError(f"unknown kernel {force!r}: choose auto or one of {', '.join(EXACT + INT8)}")
    pool = INT8 if quantize else EXACT
    kinds = [k for k in pool if available(k, device, dtype)]
    if quantize and not kinds:
        raise ValueError(f"int8 weights need a CPU kernel; none works on {device.type} with {dtype}")
    return [force] if force in kinds else kinds


def choose(
    shapes: dict[tuple[int, int], int],
    device: torch.device,
    dtype: torch.dtype,
    quantize: str | None = None,
    force: str = "auto",
    rows: tuple[int, ...] = DECODE_ROWS,
    experts: bool = False,
) -> dict[tuple[int, int], Choice]:
    """A kernel for each weight shape ({shape: how many weights have it}): measured, or read from
    the per-machine cache. `rows`: the row counts these weights see at decode, whose summed times
    decide (dense weights: batch 1 and batch 8; routed experts see fewer, see `expert_rows`)."""
    kinds = candidates(device, dtype, quantize, force)
    if experts:
        kinds = list(dict.fromkeys(EXPERT_FORM.get(k, k) for k in kinds))
    forced = force != "auto"
    path = _cache_path()
    cache = _load_cache(path)
    prefix = f"{_machine_key(dtype)}|{','.join(kinds)}"
    if any(k in NATIVE for k in kinds):  # a changed native source times again
        prefix += f"|native {native.source_digest()}"
    chosen: dict[tuple[int, int], Choice] = {}
    dirty = False
    for shape, sites in shapes.items():
        if len(kinds) == 1:
            source = "forced" if forced else "only candidate"
            chosen[shape] = Choice(shape, kinds[0], source=source, sites=sites, rows=rows)
            continue
        key = f"{prefix}|{shape[0]}x{shape[1]}" + ("" if rows == DECODE_ROWS else f"|rows {','.join(map(str, rows))}")
        hit = cache.get(key)
        if isinstance(hit, dict) and hit.get("kind") in kinds:
            chosen[shape] = Choice(shape, hit["kind"], hit.get("timings_ms", {}), "cached", sites, rows)
            continue
        timings = time_kernels(shape, dtype, kinds, rows=rows)
        # decode streams weights and is where serving spends its time: the sum over decode sizes decides
        best = min(kinds, key=lambda k: sum(timings[k][str(r)] for r in rows))
        chosen[shape] = Choice(shape, best, timings, "measured", sites, rows)
        cache[key] = {"kind": best, "timings_ms": timings}
        dirty = True
    if dirty:
        _save_cache(path, cache)
    for choice in chosen.values():
        log.info("kernel %s", choice.describe())
    return chosen


def linear_sites(model: nn.Module, skip: tuple[str, ...] = ()) -> list[tuple[nn.Module, str, nn.Linear]]:
    """Every `nn.Linear` (parent, attribute, layer), except names ending in `skip`."""
    sites = []
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not full.endswith(skip):
                sites.append((module, child_name, child))
    return sites


def prepare(model: nn.Module, quantize: str | None = None, force: str | None = None) -> list[Choice]:
    """Give every weight matmul of an inference model its kernel, chosen per shape (see `choose`).

    `quantize="int8"` stores linear and expert weights as int8, except routers and gates (a few
    rows that decide routing; they stay exact) and MLA's `wkv_b` (read as a tensor, not a linear).
    `force` (default: the BULKHEAD_MOE_KERNELS environment variable, else "auto") picks one kind
    wherever it applies. Returns the choices, also logged."""
    force = force or os.environ.get(KERNELS_ENV, "auto")
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    exact_only = ("shared_gate",)
    sites = linear_sites(model, skip=("wkv_b",))
    # (quantized?, decode rows, routed experts?) -> {shape: how many weights}, chosen per group
    shapes: dict[tuple[bool, tuple[int, ...], bool], dict[tuple[int, int], int]] = {}

    def count(shape: tuple[int, int], n: int, quantizable: bool, rows: tuple[int, ...] | None = None) -> None:
        # owners that give their decode rows are routed experts (Experts.kernel_shapes)
        group = shapes.setdefault((bool(quantize) and quantizable, rows or DECODE_ROWS, rows is not None), {})
        group[shape] = group.get(shape, 0) + n

    for _, name, layer in sites:
        count(tuple(layer.weight.shape), 1, name not in exact_only)
    owners = [m for m in model.modules() if hasattr(m, "kernel_shapes")]  # experts and routers
    for owner in owners:
        for site in owner.kernel_shapes():
            count(*site)
    chosen = {
        (q, rows, experts): choose(group, device, dtype, quantize if q else None, force, rows, experts)
        for (q, rows, experts), group in shapes.items()
    }

    def kind_of(shape: tuple, quantizable: bool, rows: tuple[int, ...] = DECODE_ROWS) -> str:
        """The kind for a weight shape, or for several shapes whose weights are used together (an
        expert's w13 and w2): then one kind for all, the least summed decode time. Decided apart,
        a near tie could split an expert's two weights and lose the fused native call, whose saving
        (no per-expert tensor ops) no single weight's timing shows."""
        if not isinstance(shape[0], tuple):
            return chosen[(bool(quantize) and quantizable, rows, False)][shape].kind
        group = chosen[(bool(quantize) and quantizable, rows, True)]
        timed = [group[s].timings_ms for s in shape]
        common = set.intersection(*(set(t) for t in timed)) if all(timed) else set()
        if not common:  # forced or a single candidate: the kinds already agree
            return group[shape[0]].kind
        kind = min(sorted(common), key=lambda k: sum(t[k][str(r)] for t in timed for r in rows))
        for s in shape:  # what the log and kernel_choices report is what runs
            if group[s].kind != kind:
                group[s].kind, group[s].source = kind, f"{group[s].source}, paired"
        return kind

    for parent, name, layer in sites:
        kind = kind_of(tuple(layer.weight.shape), name not in exact_only)
        if kind != "linear":  # a plain nn.Linear already is the `linear` kernel
            setattr(parent, name, KernelLinear(layer.weight, layer.bias, kind))
    for owner in owners:
        owner.use_kernels(kind_of)
    choices = [c for group in chosen.values() for c in group.values()]
    if available("native", device, dtype) and force in ("auto", *NATIVE, "int8-mixed"):
        for module in model.modules():
            if isinstance(getattr(module, "native", None), bool):  # model.RMSNorm and model.Attention
                module.native = True
    if device.type == "cpu":
        stacked = [m for m in owners if getattr(m, "kernels", True) is None]  # experts still stacked
        measured: dict[tuple, Choice] = {}
        for experts in stacked:
            key = (tuple(experts.w13.shape), tuple(experts.w2.shape), experts.top_k)
            if key not in measured:
                measured[key] = choose_dispatch(experts, dtype)
            experts.grouped_min_rows = measured[key].grouped_min_rows
        choices += list(measured.values())
    return choices


def expert_rows(num_experts: int, top_k: int) -> tuple[int, ...]:
    """The rows one routed expert's matmul gets at decode: one at batch 1, and at batch 8 the
    tokens' top_k picks spread over the experts (at least one): 8 * 4 / 32 = 1 row for a
    qwen3-moe layer, so its experts are chosen for one row, where the dense weights see 1 and 8."""
    return tuple(sorted({1, max(1, min(8, -(-8 * top_k // num_experts)))}))


DISPATCH_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 512)


@dataclass
class DispatchChoice(Choice):
    """From how many rows (tokens x top-k) one grouped_mm beats per-expert GEMMs, for one expert shape."""

    grouped_min_rows: int = 0

    def describe(self) -> str:
        e, two_i, h = self.shape
        start = "never" if self.grouped_min_rows > 10**8 else f"from {self.grouped_min_rows} rows"
        head = f"experts {e}x{two_i}x{h} dispatch: grouped_mm {start} ({self.source}"
        if not self.timings_ms:
            return head + ")"
        tokens, cells = _timing_cells(self.timings_ms, 2)
        return f"{head}; ms at {tokens} tokens: {cells})"


def choose_dispatch(experts: nn.Module, dtype: torch.dtype) -> DispatchChoice:
    """Time a stacked-weight expert layer's two dispatch modes on its own weights at several token
    counts, and keep the smallest row count from which grouped_mm is at least as fast at every
    larger size measured (cached per machine like the kernels)."""
    shape = tuple(experts.w13.shape)
    path = _cache_path()
    cache = _load_cache(path)
    key = f"{_machine_key(dtype)}|dispatch|{shape[0]}x{shape[1]}x{shape[2]}|k{experts.top_k}"
    hit = cache.get(key)
    if isinstance(hit, dict) and isinstance(hit.get("grouped_min_rows"), int):
        choice = DispatchChoice(shape, "dispatch", hit.get("timings_ms", {}), "cached", 1, hit["grouped_min_rows"])
        log.info("kernel %s", choice.describe())
        return choice
    gen = torch.Generator().manual_seed(0)
    k, hidden, n_exp = experts.top_k, shape[2], shape[0]
    timings: dict[str, dict[str, float]] = {"grouped": {}, "slices": {}}
    try:
        with torch.inference_mode():
            for tokens in DISPATCH_TOKENS:
                x = torch.randn(tokens, hidden, generator=gen).to(dtype)
                idx = torch.stack([torch.randperm(n_exp, generator=gen)[:k] for _ in range(tokens)])
                weights = torch.full((tokens, k), 1.0 / k, dtype=dtype)
                for mode in ("grouped", "slices"):
                    experts.dispatch = mode
                    timings[mode][str(tokens)] = _best_ms(lambda x=x, w=weights, i=idx: experts(x, w, i))
    finally:
        experts.dispatch = None
    wins = [timings["grouped"][str(t)] <= timings["slices"][str(t)] for t in DISPATCH_TOKENS]
    first = next((i for i in range(len(wins)) if all(wins[i:])), None)
    min_rows = DISPATCH_TOKENS[first] * k if first is not None else 2**31
    cache[key] = {"grouped_min_rows": min_rows, "timings_ms": timings}
    _save_cache(path, cache)
    choice = DispatchChoice(shape, "dispatch", timings, "measured", 1, min_rows)
    log.info("kernel %s", choice.describe())
    return choice
