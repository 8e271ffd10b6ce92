"""local_moe against transformers, family by family: logits within 1e-4 (fp32) and identical greedy
generations with the KV cache on."""

from __future__ import annotations

import json

import pytest
import torch

from local_moe import moe
from local_moe.cache import KVCache, Step
from local_moe.generate import greedy_generate
from local_moe.kernels import KernelLinear, can_pack
from local_moe.loader import load_model
from tests.local_moe.tiny import build, family_configs

FAMILIES = list(family_configs())
PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [14, 15, 16], [20, 30, 40, 50, 60, 70]]


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    ref = build(request.param, path)
    # on CPU `ours` is packed (kernels.py) wherever oneDNN works; `plain` keeps the F.linear path
    packed = can_pack(torch.device("cpu"), torch.float32) or None
    return request.param, ref, load_model(path, device="cpu", dtype="float32", pack=packed), path


@pytest.fixture(scope="module")
def plain(pair):
    return load_model(pair[3], device="cpu", dtype="float32", pack=False)


def test_logits_match_unpadded(pair):
    _, ref, ours, _ = pair
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            expected = ref(ids).logits
        got = ours(ids)
        assert (expected - got).abs().max().item() < 1e-4


def test_logits_match_padded_batch_through_cache(pair):
    _, ref, ours, _ = pair
    longest = max(map(len, PROMPTS))
    ids = torch.zeros(len(PROMPTS), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(PROMPTS):
        ids[b, longest - len(p) :] = torch.tensor(p)
        mask[b, longest - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        expected = ref(ids, attention_mask=mask, position_ids=positions).logits
    cache = KVCache(ours.args, len(PROMPTS), longest, ours.device, ours.dtype)
    got = ours(
        ids, positions, Step.build(cache, list(range(len(PROMPTS))), [0] * len(PROMPTS), longest, mask.bool())
    )
    real = mask.bool()
    assert (expected[real] - got[real]).abs().max().item() < 1e-4
    # each row must also equal that prompt run alone: padding leaks nothing
    for b, p in enumerate(PROMPTS):
        alone = ours(torch.tensor([p]))[0]
        assert (alone - got[b, longest - len(p) :]).abs().max().item() < 1e-4


def test_greedy_32_tokens_identical_with_cache(pair):
    _, ref, ours, _ = pair
    ref.generation_config.eos_token_id = None  # compare all 32 tokens
    mine = greedy_generate(ours, PROMPTS[:2], 32)
    for prompt, got in zip(PROMPTS[:2], mine, strict=True):
        ids = torch.tensor([prompt])
        expected = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False)
        assert got == expected[0, len(prompt) :].tolist()
        # batch 1: decode takes the one-token expert path
        assert greedy_generate(ours, [prompt], 32)[0] == got


@pytest.mark.parametrize("mode", ["grouped", "slices"])
def test_dispatch_modes_agree(pair, plain, mode, monkeypatch):
    _, ref, _, _ = pair
    monkeypatch.setattr(moe, "DISPATCH_MODE", mode)
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        expected = ref(ids).logits
    assert (expected - plain(ids)).abs().max().item() < 1e-4


def test_packed_matches_plain(pair, plain):
    _, _, ours, _ = pair
    if can_pack(torch.device("cpu"), torch.float32):
        assert isinstance(ours.lm_head, KernelLinear) and ours.lm_head.kind == "packed"
        assert all(b.mlp.experts.kernels is not None for b in ours.layers if b.is_moe)
    assert not isinstance(plain.lm_head, KernelLinear)
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            assert (ours(ids) - plain(ids)).abs().max().item() < 1e-4
    # decode-sized calls: one token (the direct k-expert path) and a batch of single tokens
    cache = KVCache(ours.args, 3, 16, ours.device, ours.dtype)
    cache_plain = KVCache(plain.args, 3, 16, plain.device, plain.dtype)
    for batch in (1, 3):
        ids = torch.tensor([[7], [8], [9]][:batch])
        a = ours(ids, step=Step.build(cache, list(range(batch)), [0] * batch, 1))
        b = plain(ids, step=Step.build(cache_plain, list(range(batch)), [0] * batch, 1))
        assert (a - b).abs().max().item() < 1e-4


def test_sharded_checkpoint_and_torch_dtype_key(tmp_path):
    ref = build("qwen3_moe", tmp_path, seed=3)
    ref.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    config["torch_dtype"] = config.pop("dtype")
    (tmp_path / "config.json").write_text(json.dumps(config))
    ours = load_model(tmp_path, device="cpu", dtype="float32")
    ids = torch.tensor([PROMPTS[2]])
    with torch.no_grad():
        assert (ref(ids).logits - ours(ids)).abs().max().item() < 1e-4


def test_bf16_runs_close_to_fp32(tmp_path):
    build("deepseek_v3", tmp_path, seed=4)
    fp32 = load_model(tmp_path, device="cpu", dtype="float32")
    bf16 = load_model(tmp_path, device="cpu", dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    ids = torch.tensor([PROMPTS[0]])
    a, b = fp32(ids), bf16(ids).float()
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


def test_packing_only_where_it_works():
    # CUDA (or any non-CPU device) and fp16 keep the plain path; no GPU needed to check the rule
    assert not can_pack(torch.device("meta"), torch.float32)
    assert not can_pack(torch.device("cpu"), torch.float16)
