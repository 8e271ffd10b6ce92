"""adapters/local_moe_adapter.py against the Adapter protocol, on a tiny real checkpoint."""

from __future__ import annotations

import pytest

from adapters.base import CallResult, UpstreamError
from adapters.local_moe_adapter import LocalMoEAdapter

CHAT = {
    "model": "local",
    "messages": [{"role": "user", "content": "hello world"}],
    "temperature": 0,
    "max_tokens": 12,
    "ignore_eos": True,
}


@pytest.fixture(scope="module")
async def adapter(tiny_checkpoint):
    a = LocalMoEAdapter("local", str(tiny_checkpoint), max_batch=2, max_seq=256)
    yield a
    await a.aclose()


async def test_chat_returns_openai_body_usage_and_expert_summary(adapter):
    assert await adapter.health()
    result = await adapter.chat(CHAT, timeout=60)
    assert isinstance(result, CallResult)
    body = result.body
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "length"
    assert result.usage.completion_tokens == 12 == body["usage"]["completion_tokens"]
    assert result.usage.prompt_tokens > 0
    assert result.provider_model == adapter.provider_model
    assert result.extra["experts"]["tokens"] > 0 and "mean_cv" in result.extra["experts"]


async def test_stream_chat_matches_chat_and_ends_with_usage(adapter):
    full = await adapter.chat(CHAT, timeout=60)
    chunks = [c async for c in adapter.stream_chat(CHAT, timeout=60)]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == full.body["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12


async def test_abandoned_stream_releases_slot(adapter):
    body = CHAT | {"max_tokens": 200}
    for _ in range(3):  # more abandoned streams than slots
        stream = adapter.stream_chat(body, timeout=60)
        await anext(stream)
        await stream.aclose()
    result = await adapter.chat(CHAT, timeout=60)
    assert result.usage.completion_tokens == 12


async def test_completion(adapter):
    result = await adapter.completion(
        {"prompt": "the quick brown", "max_tokens": 5, "temperature": 0, "ignore_eos": True}, timeout=60
    )
    assert result.body["object"] == "text_completion"
    assert result.usage.completion_tokens == 5


async def test_unsupported_requests_are_rejected(adapter):
    with pytest.raises(UpstreamError) as err:
        await adapter.embeddings({"input": "x"}, timeout=5)
    assert err.value.kind == "rejected" and not err.value.retryable
    with pytest.raises(UpstreamError) as err:
        await adapter.chat(CHAT | {"n": 2}, timeout=5)
    assert err.value.kind == "rejected"
    with pytest.raises(UpstreamError) as err:
        await adapter.chat(CHAT | {"messages": []}, timeout=5)
    assert err.value.kind == "rejected"


async def test_expert_stats_cumulative(adapter):
    await adapter.chat(CHAT, timeout=60)
    stats = adapter.expert_stats()
    assert stats["loaded"] and stats["tokens"] > 0
    assert stats["layers"] and len(stats["layers"][0]["tokens_per_expert"]) == 8


async def test_missing_model_is_unavailable(tmp_path):
    a = LocalMoEAdapter("missing", str(tmp_path / "nope"))
    assert not await a.health()
    with pytest.raises(UpstreamError) as err:
        await a.chat(CHAT, timeout=5)
    assert err.value.kind == "unavailable"
    await a.aclose()


async def test_timeout_maps_to_upstream_timeout_and_frees_slot(adapter):
    for _ in range(3):  # more timed-out requests than slots
        with pytest.raises(UpstreamError) as err:
            await adapter.chat(CHAT | {"max_tokens": 200}, timeout=0.01)
        assert err.value.kind == "timeout" and err.value.retryable
    result = await adapter.chat(CHAT, timeout=60)
    assert result.usage.completion_tokens == 12
