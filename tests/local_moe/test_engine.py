"""The continuous-batching engine: joining mid-decode, slot release on cancel, sampling, stop strings,
per-request expert statistics."""

from __future__ import annotations

import asyncio

import pytest
import torch

from local_moe.engine import Engine
from local_moe.generate import greedy_generate
from local_moe.loader import load_model
from local_moe.sampling import SamplingParams
from local_moe.tokenizer import Tokenizer
from tests.local_moe.conftest import make_checkpoint

GREEDY = dict(temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    eng = Engine(load_model(tiny_checkpoint), Tokenizer(tiny_checkpoint), max_batch=4, max_seq=256)
    yield eng
    eng.close()


def prompt(engine, text: str) -> list[int]:
    return engine.tokenizer.encode_chat([{"role": "user", "content": text}])


async def test_late_request_joins_running_batch(engine):
    a_prompt, b_prompt = prompt(engine, "hello world"), prompt(engine, "the lazy dog")
    order: list[str] = []
    a_tokens: list[int] = []
    b_tokens: list[int] = []

    async def run(name, ids, sink, n):
        async for event in engine.stream(ids, SamplingParams(max_tokens=n, **GREEDY)):
            sink.extend(event.token_ids)
            order.append(name)

    a = asyncio.create_task(run("a", a_prompt, a_tokens, 48))
    while len(a_tokens) < 4:
        await asyncio.sleep(0.001)
    await asyncio.gather(a, run("b", b_prompt, b_tokens, 8))
    # b started and finished while a was still decoding: it joined a's batch
    assert order.index("b") < len(order) - 1 and order[-1] == "a"
    assert engine.max_batch_seen >= 2
    # batching changes nothing about the answers
    alone = greedy_generate(engine.model, [a_prompt, b_prompt], 48)
    assert a_tokens == alone[0]
    assert b_tokens == alone[1][:8]


async def test_cancelled_stream_frees_its_slot(tmp_path):
    ckpt = make_checkpoint(tmp_path, "qwen3_moe", seed=1)
    eng = Engine(load_model(ckpt), Tokenizer(ckpt), max_batch=1, max_seq=512)
    try:
        stream = eng.stream(prompt(eng, "hello"), SamplingParams(max_tokens=400, **GREEDY))
        await anext(stream)
        await anext(stream)
        await stream.aclose()  # the client went away
        # with one slot, this only completes if the abandoned request released it
        result = await asyncio.wait_for(
            eng.complete(prompt(eng, "fox"), SamplingParams(max_tokens=3, **GREEDY)), 60
        )
        assert result.completion_tokens == 3
        assert eng.load["active"] == 0
    finally:
        eng.close()


async def test_seed_makes_sampling_reproducible(engine):
    ids = prompt(engine, "quick brown")
    params = dict(temperature=1.0, top_p=0.9, top_k=50, max_tokens=16, ignore_eos=True)
    a = await engine.complete(ids, SamplingParams(seed=7, **params))
    b = await engine.complete(ids, SamplingParams(seed=7, **params))
    others = [await engine.complete(ids, SamplingParams(seed=s, **params)) for s in (8, 9, 10)]
    assert a.token_ids == b.token_ids
    assert any(o.token_ids != a.token_ids for o in others)


async def test_top_k_one_is_greedy(engine):
    ids = prompt(engine, "routers pick")
    greedy = await engine.complete(ids, SamplingParams(max_tokens=12, **GREEDY))
    top1 = await engine.complete(
        ids, SamplingParams(temperature=0.7, top_k=1, seed=3, max_tokens=12, ignore_eos=True)
    )
    assert top1.token_ids == greedy.token_ids


async def test_stop_string_and_max_tokens(engine):
    ids = prompt(engine, "hello world")
    full = await engine.complete(ids, SamplingParams(max_tokens=40, **GREEDY))
    assert full.finish_reason == "length" and full.completion_tokens == 40
    text = full.text
    stop = next(
        text[i : i + 2]
        for i in range(3, len(text) - 2)
        if text[i : i + 2].strip() and text[i : i + 2] not in text[:i]
    )
    cut = await engine.complete(ids, SamplingParams(max_tokens=40, stop=[stop], **GREEDY))
    assert cut.finish_reason == "stop"
    assert cut.text == text[: text.index(stop)]
    assert stop not in cut.text


async def test_streamed_text_equals_decoded_tokens(engine):
    ids = prompt(engine, "small model says")
    pieces, tokens = [], []
    async for event in engine.stream(ids, SamplingParams(max_tokens=24, **GREEDY)):
        pieces.append(event.text)
        tokens.extend(event.token_ids)
    assert "".join(pieces) == engine.tokenizer.decode(tokens)


async def test_per_request_expert_statistics(engine):
    ids = prompt(engine, "experts route tokens")
    result = await engine.complete(ids, SamplingParams(max_tokens=10, **GREEDY))
    stats = result.experts
    args = engine.model.args
    forwarded = len(ids) + result.completion_tokens - 1  # the last sampled token is never fed back
    assert stats["tokens"] == forwarded
    assert stats["moe_layers"] == sum(args.moe_layers)
    for layer in stats["layers"]:
        counts = torch.tensor(layer["tokens_per_expert"], dtype=torch.float64)
        assert counts.sum().item() == forwarded * args.top_k
        assert layer["cv"] == pytest.approx((counts.std(unbiased=False) / counts.mean()).item(), abs=1e-3)
        assert layer["dead"] == [i for i, c in enumerate(layer["tokens_per_expert"]) if c == 0]
        assert 0.0 <= layer["entropy"] <= 1.0
    cumulative = engine.expert_stats()
    assert cumulative["tokens"] >= forwarded
