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


def _native_runs() -> bool:
    return available("native", CPU, torch.bfloat16)


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 40])
def test_native_kernels_compute_the_product_at_every_row_count(rows):
    # 1-8 rows take the compiled kernel, more take F.linear on the same weight; 232 inputs cover
    # the kernel's unrolled steps, its 32-wide steps and a masked tail
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    torch.manual_seed(rows)
    w = torch.randn(70, 232).bfloat16()
    x = torch.randn(2, rows, 232).bfloat16()
    want = F.linear(x.float(), w.float())
    got = KernelLinear(w, None, "native")(x)
    assert got.dtype == torch.bfloat16 and got.shape == (2, rows, 70)
    # fp32 sums rounded once to bf16: at most about one bf16 step (2**-8 relative) per output
    assert ((got.float() - want).abs() <= want.abs() * 2**-7 + 1e-3).all()
    q, scale = quantize_int8(w.float())
    want8 = F.linear(x.float(), q.float() * scale[:, None])
    got8 = KernelLinear(w, None, "int8-native")(x).float()
    assert (got8 - want8).norm() <= 1e-2 * want8.norm()


@pytest.mark.parametrize("width", [232, 4200])
def test_native_int8_is_within_a_bf16_step_of_the_quantized_product(width):
    # int8 weights meet the activations exactly (bf16 and fp32 builds) or, with AVX-512 VNNI, as
    # 16-bit fixed point with one scale per row: either way each output is within a bf16 rounding
    # of the output plus half a fixed-point step per product. 232 columns cover the unrolled,
    # 32-wide and masked steps; 4,200 cross a block of int32 sums.
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    from local_moe import native

    torch.manual_seed(width)
    w = torch.randn(48, width).bfloat16()
    q, scale = quantize_int8(w.float())  # as the layer quantizes its bf16 weight
    dequant = q.float() * scale[:, None]
    layer = KernelLinear(w, None, "int8-native")
    for rows in (1, 2, 5, 8):
        x = torch.randn(rows, width).bfloat16()
        x[0, 3] = 300.0  # an outlier: the other elements of that row get the fewest bits
        want = F.linear(x.float(), dequant)
        got = layer(x).float()
        step = x.float().abs().amax(-1, keepdim=True) / 32767
        bound = want.abs() * 2**-8 + (dequant.abs().sum(-1)[None] * step / 2) + 1e-6
        assert (got - want).abs().le(bound).all(), native.int8_activations()
    x = torch.randn(3, width).bfloat16()
    x[1] = 0.0
    x[2, 7] = float("inf")
    got = layer(x).float()
    assert got[1].eq(0).all()  # a row of zeros gives zeros
    assert not got[2].isfinite().any()  # and one holding inf gives no finite output
    assert got[0].isfinite().all()


def test_native_kernel_refuses_weights_it_cannot_read():
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    with pytest.raises(ValueError, match="reads bf16 weights"):
        KernelLinear(torch.randn(8, 32), None, "native")
    assert not available("native", CPU, torch.float32)  # fp32 models keep the library kernels


@pytest.fixture
def native_reloaded():
    """The native library and kernel availability looked up afresh in the test, and forgotten after
    it: the next lookup comes after monkeypatch restores the environment, so no other test sees
    what this one set up."""
    from local_moe import native

    native.library.cache_clear()
    available.cache_clear()
    yield native
    native.library.cache_clear()
    available.cache_clear()


def test_without_a_compiler_the_native_kernels_are_not_candidates(monkeypatch, native_reloaded):
    monkeypatch.setenv(native_reloaded.CXX_ENV, "off")
    assert native_reloaded.library() is None
    assert "native" not in kernels.candidates(CPU, torch.bfloat16, None)
    assert "int8-native" not in kernels.candidates(CPU, torch.bfloat16, "int8")


def test_a_model_on_native_kernels_matches_exact_bf16(tmp_path, monkeypatch):
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    build("qwen3_moe", tmp_path, seed=8)
    exact = load_model(tmp_path, device="cpu", dtype="bfloat16", pack=False)
    monkeypatch.setenv(kernels.KERNELS_ENV, "native")
    ours = load_model(tmp_path, device="cpu", dtype="bfloat16")
    assert all(m.kind == "native" for m in ours.modules() if isinstance(m, KernelLinear))
    assert all(w13.kind == "native" for b in ours.layers if b.is_moe for w13, _ in b.mlp.experts.kernels)
    with torch.no_grad():
        for ids in (torch.tensor([PROMPT]), torch.tensor([[7]])):  # prefill rows and one decode row
            a, b = exact(ids).float(), ours(ids).float()
            assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_fused_experts_equal_the_per_expert_path_bit_for_bit(tmp_path, monkeypatch, quantize):
    # the one-call expert layer rounds and adds as the per-expert path does, so decode is unchanged
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    build("mixtral", tmp_path, seed=9)  # 4 experts, top-2, silu
    monkeypatch.setenv(kernels.KERNELS_ENV, "int8-native" if quantize else "native")
    model = load_model(tmp_path, device="cpu", dtype="bfloat16", quantize=quantize)
    layer = model.layers[0].mlp
    assert layer.experts.fused is not None
    torch.manual_seed(1)
    for tokens in (1, 3, 8, 9):  # 9: more than the fused call takes, the per-expert path serves
        x = torch.randn(tokens, layer.args.hidden_size).bfloat16()
        weights, idx, _ = layer.gate(x)
        with torch.no_grad():
            fused = layer.experts(x, weights, idx)
            keep, layer.experts.fused = layer.experts.fused, None
            plain = layer.experts(x, weights, idx)
            layer.experts.fused = keep
        assert torch.equal(fused, plain)


def test_native_rmsnorm_matches_the_torch_form():
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    from local_moe.model import RMSNorm

    torch.manual_seed(2)
    norm = RMSNorm(200, eps=1e-6).to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(200))
    for shape in ((1, 1, 200), (3, 5, 200)):
        x = (torch.randn(shape) * 3).bfloat16()
        want = norm(x)
        norm.native = True
        got = norm(x)
        norm.native = False
        # the sum of squares in another order: at most one bf16 step apart, almost always equal
        assert ((got.float() - want.float()).abs() <= want.float().abs() * 2**-7 + 1e-6).all()
        assert (got == want).float().mean() > 0.95


def test_routed_experts_are_chosen_for_the_rows_they_see(tmp_path, cache_file):
    assert kernels.expert_rows(32, 4) == (1,)  # 8 tokens x top-4 over 32 experts: one row each
    assert kernels.expert_rows(8, 2) == (1, 2)
    assert kernels.expert_rows(4, 4) == (1, 8)
    build("qwen3_moe", tmp_path, seed=10)  # 8 experts, top-2
    model = load_model(tmp_path, device="cpu", dtype="bfloat16")
    experts = [c for c in model.kernel_choices if c.rows == (1, 2)]
    dense = [
        c for c in model.kernel_choices if c.rows == kernels.DECODE_ROWS and not isinstance(c, kernels.DispatchChoice)
    ]
    assert {c.shape for c in experts} == {(64, 64), (64, 32)}  # w13 [2 x 32, 64] and w2 [64, 32]
    assert all(c.sites == 8 * 2 for c in experts)  # 8 experts in each of the two MoE layers
    assert dense and all("experts" not in c.describe() for c in dense)
    assert all("experts, decided at 1 / 2 rows" in c.describe() for c in experts)


def test_without_a_compiler_a_prebuilt_variant_is_loaded(tmp_path, monkeypatch, native_reloaded):
    # the container image: variants built at image build, no compiler at run time
    native = native_reloaded
    if native._compiler() is None:
        pytest.skip("no compiler here to build the variants")
    built = native.build_prebuilt(tmp_path)
    assert len(built) == len(native.VARIANTS) and all(p.exists() for p in built)
    monkeypatch.setenv(native.CXX_ENV, "off")
    monkeypatch.setenv(native.PREBUILT_ENV, str(tmp_path))
    runnable = [name for name, _, needs in native.VARIANTS if needs <= native.cpu_flags()]
    if not runnable:
        assert native.library() is None
    else:
        assert native.isa() == runnable[0]  # the best level this CPU has
        x, w = torch.randn(2, 96).bfloat16(), torch.randn(40, 96).bfloat16()
        got = native.gemv_bf16(x, w).float()
        want = F.linear(x.float(), w.float())
        assert (got - want).norm() <= 1e-2 * want.norm()


def test_native_decode_attention_matches_the_library_path(tmp_path, monkeypatch):
    # padded prompts of different lengths (masked cache positions), contiguous and gathered slots
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    from local_moe.cache import KVCache, Step
    from local_moe.model import Attention

    build("qwen3_moe", tmp_path, seed=11)  # 4 query heads over 2 kv heads
    monkeypatch.setenv(kernels.KERNELS_ENV, "native")
    model = load_model(tmp_path, device="cpu", dtype="bfloat16")
    attention = [m for m in model.modules() if isinstance(m, Attention)]
    assert attention and all(m.native for m in attention)

    def decode(native_attention: bool) -> list[torch.Tensor]:
        for m in attention:
            m.native = native_attention
        cache = KVCache(model.args, 4, 32, model.device, model.dtype)
        ids = torch.tensor([[0, 0, 0, 5, 6, 7], [8, 9, 10, 11, 12, 13], [0, 14, 15, 16, 17, 18]])
        pad = ids != 0
        positions = (pad.long().cumsum(-1) - 1).clamp_min(0)
        out = []
        with torch.no_grad():
            model(ids, positions, Step.build(cache, [1, 2, 3], [0, 0, 0], 6, pad), last_only=True)
            lengths = pad.sum(-1)
            for i in range(3):
                nxt = torch.tensor([[20 + i], [30 + i], [40 + i]])
                step = Step.build(cache, [1, 2, 3], [6 + i] * 3, 1)
                out.append(model(nxt, (lengths + i)[:, None], step, last_only=True).float())
            step = Step.build(cache, [3, 1], [9, 9], 1)  # slots out of order: the library path gathers
            out.append(model(torch.tensor([[50], [51]]), (lengths[[2, 0]] + 3)[:, None], step, last_only=True).float())
        return out

    for got, want in zip(decode(True), decode(False), strict=True):
        assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.999
        assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_native_rope_and_cache_write_equal_the_torch_form_bit_for_bit():
    if not _native_runs():
        pytest.skip("the native kernels do not build or run here")
    from local_moe import native
    from local_moe.model import apply_rope

    torch.manual_seed(3)
    b, h, n_kv, d, slots, max_seq = 3, 4, 2, 64, 5, 16
    qkv = torch.randn(b, 1, (h + 2 * n_kv) * d).bfloat16() * 3  # rows as wqkv gives them: a split
    q, k, v = (t.view(b, 1, -1, d) for t in qkv.split((h * d, n_kv * d, n_kv * d), dim=-1))
    angles = torch.rand(b, 1, 1, d // 2) * 50
    cos, sin = angles.cos().bfloat16(), angles.sin().bfloat16()
    slot, pos = torch.tensor([4, 0, 2]), torch.tensor([[7], [0], [15]])
    kc, vc = torch.zeros(slots, n_kv, max_seq, d).bfloat16(), torch.zeros(slots, n_kv, max_seq, d).bfloat16()
    want_kc, want_vc = kc.clone(), vc.clone()
    got_q = native.rope_cache_decode_bf16(q, k, v, cos, sin, kc, vc, slot, pos)
    want_q = apply_rope(q, cos, sin, False)[:, 0]
    want_kc[slot[:, None], :, pos] = apply_rope(k, cos, sin, False)
    want_vc[slot[:, None], :, pos] = v
    assert torch.equal(got_q, want_q)
    assert torch.equal(kc, want_kc) and torch.equal(vc, want_vc)


def test_an_experts_two_weights_get_one_kind(tmp_path, monkeypatch):
    # w2 alone would take packed; summed with w13, native is faster, and both must be native to fuse
    if not _native_runs() or not available("packed", CPU, torch.bfloat16):
        pytest.skip("needs the native and packed kernels")
    table = {
        (64, 64): {"linear": 5.0, "packed": 2.0, "native": 1.0},
        (64, 32): {"linear": 5.0, "packed": 1.0, "native": 1.5},
    }

    def fake_timings(shape, dtype, kinds, working_set_mb=None, rows=kernels.DECODE_ROWS):
        ms = table.get(shape, {"linear": 3.0, "packed": 2.0, "native": 1.0})
        return {k: {str(r): ms[k] for r in (*rows, kernels.PREFILL_ROWS)} for k in kinds}

    monkeypatch.setattr(kernels, "time_kernels", fake_timings)
    monkeypatch.setenv(kernels.CACHE_ENV, "off")
    build("qwen3_moe", tmp_path, seed=12)
    model = load_model(tmp_path, device="cpu", dtype="bfloat16")
    moe_layers = [b.mlp.experts for b in model.layers if b.is_moe]
    assert all(w13.kind == w2.kind == "native" for e in moe_layers for w13, w2 in e.kernels)
    assert all(e.fused is not None for e in moe_layers)
    w2_choice = next(c for c in model.kernel_choices if c.shape == (64, 32) and c.rows == (1, 2))
    assert w2_choice.kind == "native" and "paired" in w2_choice.source


def test_int8_mixed_reads_one_row_natively_and_more_with_fbgemm(tmp_path, monkeypatch):
    if not available("int8-mixed", CPU, torch.bfloat16):
        pytest.skip("int8-mixed needs the native kernels and fbgemm")
    torch.manual_seed(3)
    w = torch.randn(48, 96).bfloat16()
    mixed, ours, theirs = (KernelLinear(w, None, k) for k in ("int8-mixed", "int8-native", "int8-dynamic"))
    one, rows = torch.randn(1, 1, 96).bfloat16(), torch.randn(5, 96).bfloat16()
    assert torch.equal(mixed(one), ours(one))  # weight-only at batch-1 decode
    assert torch.equal(mixed(rows), theirs(rows))
    # dense weights only: forced everywhere, routed experts keep one int8 layout (int8-native)
    build("qwen3_moe", tmp_path, seed=13)
    monkeypatch.setenv(kernels.KERNELS_ENV, "int8-mixed")
    model = load_model(tmp_path, device="cpu", dtype="bfloat16", quantize="int8")
    assert model.lm_head.kind == "int8-mixed"
    experts = [b.mlp.experts for b in model.layers if b.is_moe]
    assert all(w13.kind == w2.kind == "int8-native" for e in experts for w13, w2 in e.kernels)
    assert all(e.fused is not None for e in experts)


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ("fpu avx2 avx512f avx512_bf16", torch.bfloat16),
        ("fpu amx_bf16 amx_tile", torch.bfloat16),
        ("fpu avx2", torch.float32),
    ],
)
def test_the_cpu_default_dtype_is_bf16_only_where_the_cpu_computes_it(monkeypatch, flags, want):
    from local_moe import loader, native

    monkeypatch.setattr(native, "cpuinfo", lambda field: flags if field == "flags" else "")
    assert loader.pick_device("cpu") == (CPU, want)
    assert loader.pick_device("cpu", "float32") == (CPU, torch.float32)  # a named dtype decides
