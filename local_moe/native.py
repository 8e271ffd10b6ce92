"""local_moe's own decode kernels (csrc/gemv.cpp), compiled on the machine that runs them.

Built once per machine with `-march=native`, so one source serves whatever vector instructions the
CPU has (AVX-512 BF16 on recent EPYC and Xeon; plain loops the compiler vectorizes elsewhere), and
cached beside the kernel choices under a key of the source, the compiler and the CPU's flags.
Where no compiler runs (the container image), a variant prebuilt for an x86-64 level the CPU has
is loaded instead (`bulkhead moe build-kernels` builds them; the image's build stage does).
Where neither works, the kernels are simply not candidates: `kernels.choose` keeps to the library
ones and the log says why. `BULKHEAD_MOE_CXX` names the compiler (default `$CXX`, else `g++`);
`off` means none; `BULKHEAD_MOE_NATIVE_DIR` is where prebuilt variants are looked for (default
`local_moe/prebuilt/`).

Called through ctypes with the tensors' pointers (ctypes releases the GIL for the call). torch must
be imported first: the library then binds to the OpenMP runtime torch loaded (same soname), so both
share one thread pool instead of two pools fighting over the cores.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

log = logging.getLogger("local_moe.native")

SOURCE = Path(__file__).parent / "csrc" / "gemv.cpp"
CXX_ENV = "BULKHEAD_MOE_CXX"
PREBUILT_ENV = "BULKHEAD_MOE_NATIVE_DIR"  # prebuilt variants, for machines without a compiler
PREBUILT_DIR = Path(__file__).parent / "prebuilt"
MAX_ROWS = 8  # the kernels take 1 to 8 rows; KernelLinear sends more to the library kernels
_FLAGS = ["-std=c++20", "-O3", "-fopenmp", "-shared", "-fPIC"]
_BUILD_TIMEOUT_S = 180
# Where no compiler runs (the container image has none), a build made elsewhere for an ISA level
# this CPU has: the best first. -march=native on the machine itself is preferred to all of them.
VARIANTS = (
    (  # Cooper Lake, Sapphire Rapids and Zen 4 on: int8 weights meet 16-bit activations in VNNI
        "avx512-bf16",
        ["-march=x86-64-v4", "-mavx512bf16", "-mavx512vnni"],
        {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni"},
    ),
    ("avx512", ["-march=x86-64-v4"], {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}),
    ("avx2", ["-march=x86-64-v3"], {"avx2", "fma", "bmi2", "f16c", "movbe"}),
)


@functools.cache
def source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


@functools.cache
def cpuinfo(field: str) -> str:
    """A field of /proc/cpuinfo's first processor ("model name", "flags"); "" where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set[str]:
    """The CPU's feature flags ("avx512_bf16", ...), as /proc/cpuinfo lists them."""
    return set(cpuinfo("flags").split())


def _compiler() -> str | None:
    name = os.environ.get(CXX_ENV) or os.environ.get("CXX") or "g++"
    if name == "off":
        return None
    return shutil.which(name)


def cache_home() -> Path | None:
    """$XDG_CACHE_HOME, else ~/.cache; None where the user has no home directory."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base)
    try:
        return Path.home() / ".cache"
    except RuntimeError:
        return None


def _build_dir() -> Path:
    """Beside the kernel choices (kernels._cache_path), or a temporary folder without a home."""
    home = cache_home()
    return home / "bulkhead" / "native" if home is not None else Path(tempfile.gettempdir()) / "bulkhead-native"


def compile_to(target: Path, march: list[str], cxx: str) -> str | None:
    """Compile the kernels into `target` (atomically); the compiler's complaint on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.so")
    done = subprocess.run(
        [cxx, *_FLAGS, *march, str(SOURCE), "-o", str(tmp)], capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        return done.stderr.strip()[-500:] or f"exit {done.returncode}"
    tmp.replace(target)  # a concurrent loader sees no file or the whole file
    return None


def _native_build(cxx: str) -> Path | None:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags = " ".join(sorted(cpu_flags()))
    key = hashlib.sha256(f"{source_digest()}|{version}|{flags}|{' '.join(_FLAGS)}".encode())
    target = _build_dir() / f"gemv-{key.hexdigest()[:16]}.so"
    if not target.exists():
        error = compile_to(target, ["-march=native"], cxx)
        if error:
            log.warning("native kernels: %s -march=native failed: %s", cxx, error)
            return None
    return target


def _prebuilt() -> Path | None:
    """The best prebuilt variant this CPU runs, if any was built for this source."""
    folder = Path(os.environ.get(PREBUILT_ENV) or PREBUILT_DIR)
    digest = source_digest()
    have = cpu_flags()
    for name, _, needs in VARIANTS:
        path = folder / f"gemv-{name}-{digest}.so"
        if needs <= have and path.exists():
            return path
    return None


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels: built here with -march=native on first use, else a prebuilt variant;
    None where neither exists (logged)."""
    if not torch.backends.openmp.is_available():  # the library's threads come from torch's OpenMP
        log.info("native kernels off: this torch has no OpenMP")
        return None
    cxx = _compiler()
    try:
        target = _native_build(cxx) if cxx else None
        target = target or _prebuilt()
        if target is None:
            log.info("native kernels off: no C++ compiler (%s) and no prebuilt variant for this CPU", cxx or "none")
            return None
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("native kernels off: %s", exc)
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.bk_gemv_bf16.argtypes = [ptr, i64, i64, ptr, i64, ptr, ctypes.c_int]
    lib.bk_gemv_int8.argtypes = [ptr, i64, i64, ptr, ptr, i64, ptr, ctypes.c_int]
    lib.bk_moe_bf16.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ctypes.c_int, ptr, ctypes.c_int]
    lib.bk_moe_int8.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ctypes.c_int, ptr, ctypes.c_int]
    lib.bk_rmsnorm_bf16.argtypes = [ptr, i64, i64, ptr, ctypes.c_float, ptr, ctypes.c_int]
    lib.bk_attn_decode_bf16.argtypes = [ptr, ptr, ptr, ptr, *[i64] * 6, ptr, ctypes.c_float, ptr, ctypes.c_int]
    rows = [ptr, i64] * 3  # q, k, v and their row strides
    lib.bk_rope_cache_decode_bf16.argtypes = [*rows, *[ptr] * 6, *[i64] * 5, ptr]
    lib.bk_isa.restype = ctypes.c_char_p
    lib.bk_int8_acts.restype = ctypes.c_char_p
    log.info(
        "native kernels: %s (%s; int8 weights meet activations as %s)",
        target.name,
        lib.bk_isa().decode(),
        lib.bk_int8_acts().decode(),
    )
    return lib


def build_prebuilt(folder: Path, cxx: str = "g++") -> list[Path]:
    """Build every variant into `folder` (the container image's build stage runs this)."""
    digest = source_digest()
    built = []
    for name, march, _ in VARIANTS:
        path = folder / f"gemv-{name}-{digest}.so"
        error = compile_to(path, march, cxx)
        if error:
            raise RuntimeError(f"building the {name} variant failed: {error}")
        built.append(path)
    return built


def isa() -> str | None:
    lib = library()
    return lib.bk_isa().decode() if lib is not None else None


def int8_activations() -> str | None:
    """How `int8-native` forms its products in this build: "exact" (from bf16 activations) or
    "int16 per row (vnni)" (activations rounded to 16-bit fixed point, one scale per row)."""
    lib = library()
    return lib.bk_int8_acts().decode() if lib is not None else None


def gemv_bf16(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [M, K] bf16 (1 <= M <= 8) times weight [N, K] bf16, transposed -> [M, N] bf16."""
    m, k = x.shape
    y = torch.empty(m, weight.shape[0], dtype=torch.bfloat16)
    rc = library().bk_gemv_bf16(
        x.data_ptr(), m, k, weight.data_ptr(), weight.shape[0], y.data_ptr(), torch.get_num_threads()
    )
    if rc != 0:
        raise ValueError(f"native gemv takes 1 to {MAX_ROWS} rows, got {m}")
    return y


def gemv_int8(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [M, K] bf16 times int8 weight q [N, K] with fp32 row scales [N] -> [M, N] bf16."""
    m, k = x.shape
    y = torch.empty(m, q.shape[0], dtype=torch.bfloat16)
    rc = library().bk_gemv_int8(
        x.data_ptr(), m, k, q.data_ptr(), scale.data_ptr(), q.shape[0], y.data_ptr(), torch.get_num_threads()
    )
    if rc != 0:
        raise ValueError(f"native gemv takes 1 to {MAX_ROWS} rows, got {m}")
    return y


def rmsnorm_bf16(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of bf16 x [..., dim] with a bf16 weight [dim], as `model.RMSNorm` computes it."""
    x = x.contiguous()
    y = torch.empty_like(x)
    dim = x.shape[-1]
    library().bk_rmsnorm_bf16(
        x.data_ptr(), x.numel() // dim, dim, weight.data_ptr(), eps, y.data_ptr(), torch.get_num_threads()
    )
    return y


def attention_decode_bf16(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """One new token per row: q [B, H, D] bf16 against the cached keys and values [slots, n_kv,
    max_seq, D] of each row's slot (slots [B]), over the first L positions that mask [B, L] allows
    -> [B, H, D] bf16."""
    b, h, d = q.shape
    q, mask = q.contiguous(), mask.contiguous()
    out = torch.empty_like(q)
    library().bk_attn_decode_bf16(
        q.data_ptr(),
        k_cache.data_ptr(),
        v_cache.data_ptr(),
        slots.data_ptr(),
        b,
        h,
        k_cache.shape[1],
        d,
        k_cache.shape[2],
        mask.shape[-1],
        mask.data_ptr(),
        scale,
        out.data_ptr(),
        torch.get_num_threads(),
    )
    return out


def rope_cache_decode_bf16(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """One new token per row: q [B, 1, H, D], k and v [B, 1, n_kv, D] (bf16, heads and dims
    contiguous in a row), cos and sin [B, 1, 1, D/2]. Writes rope(k) and v at each row's slot
    (slots [B]) and position (positions [B]) of the caches [slots, n_kv, max_seq, D]; returns
    rope(q) [B, H, D]. As `model.apply_rope` rounds: bit for bit."""
    b, _, h, d = q.shape
    cos, sin = cos.contiguous(), sin.contiguous()
    slots, positions = slots.contiguous(), positions.contiguous()
    out = torch.empty(b, h, d, dtype=torch.bfloat16)
    library().bk_rope_cache_decode_bf16(
        q.data_ptr(),
        q.stride(0),
        k.data_ptr(),
        k.stride(0),
        v.data_ptr(),
        v.stride(0),
        cos.data_ptr(),
        sin.data_ptr(),
        k_cache.data_ptr(),
        v_cache.data_ptr(),
        slots.data_ptr(),
        positions.data_ptr(),
        b,
        h,
        k.shape[2],
        d,
        k_cache.shape[2],
        out.data_ptr(),
    )
    return out


ACTIVATIONS = {"silu": 0, "swish": 0, "gelu": 1}


class FusedExperts:
    """One call for a layer's routed experts over a few tokens (`bk_moe_*`): the addresses of every
    expert's weights, gathered once when the kernels are set up."""

    def __init__(self, kernels: list, act: str):
        # kernels: per expert (w13, w2) KernelLinear of one native kind; they own the weights
        w13, w2 = kernels[0]
        self.int8 = w13.kind == "int8-native"
        self.inter, self.hidden = w2.in_features, w2.out_features
        self.act = ACTIVATIONS[act]

        def addresses(attr: str, which: int) -> torch.Tensor:
            return torch.tensor([getattr(pair[which], attr).data_ptr() for pair in kernels], dtype=torch.int64)

        weight = "q" if self.int8 else "weight"
        self.w13, self.w2 = addresses(weight, 0), addresses(weight, 1)
        self.s13 = addresses("scale", 0) if self.int8 else None
        self.s2 = addresses("scale", 1) if self.int8 else None
        self._keep = kernels  # the addresses are only valid while these hold their tensors

    def __call__(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """x [n, H] (n <= 8), routing weights and expert ids [n, k] -> [n, H] bf16."""
        n, k = idx.shape
        x = x.to(torch.bfloat16).contiguous()
        idx = idx.to(torch.int64).contiguous()
        wts = weights.to(torch.bfloat16).contiguous()
        y = torch.empty(n, self.hidden, dtype=torch.bfloat16)
        lib, threads = library(), torch.get_num_threads()
        head = (x.data_ptr(), n, self.hidden, self.inter, k, idx.data_ptr(), wts.data_ptr(), self.w13.data_ptr())
        tail = (self.act, y.data_ptr(), threads)
        if self.int8:
            rc = lib.bk_moe_int8(*head, self.s13.data_ptr(), self.w2.data_ptr(), self.s2.data_ptr(), *tail)
        else:
            rc = lib.bk_moe_bf16(*head, self.w2.data_ptr(), *tail)
        if rc != 0:
            raise ValueError(f"fused experts take 1 to {MAX_ROWS} tokens and top-k <= {MAX_ROWS}, got {n} x {k}")
        return y
