"""The decide stage: allowed set, cheapest adequate, fallbacks, and never across the trust boundary."""

from __future__ import annotations

import pytest

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.policy import Policy
from gateway.request import ModelRequest
from gateway.routing import Risk, decide, difficulty

APP = Principal(tenant_id="t", tenant="t", key_id="k", roles=("app",))
BASE = "http://127.0.0.1:9/v1"


def policy(**routing) -> Policy:
    def b(name, trust, quality, price, **kw):
        return {"name": name, "adapter": "openai", "model": name, "api_base": BASE, "trust": trust,
                "quality": quality, "price": {"input_per_mtok": price, "output_per_mtok": price * 4}, **kw}
    return Policy.model_validate({"backends": [
        b("cheap", "external", 2, 0.1),
        b("mid", "external", 3, 1.0),
        b("strong", "external", 5, 10.0),
        b("local-small", "internal", 2, 0.5),
        b("local-big", "internal", 4, 2.0, context_window=8000),
        b("embedder", "external", 3, 0.02, modes=["embeddings"]),
    ], "routing": routing})


def route(p: Policy, model: str, mode: str, body: dict, *, risk: Risk = Risk(), prompt_tokens: int = 0,
          latency_ms: dict | None = None):
    return decide(p, APP, ModelRequest.of(mode, {**body, "model": model}), risk, latency_ms, tokens=prompt_tokens)


SIMPLE = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
HARD = {"messages": [{"role": "user", "content": "Step by step, analyze and refactor this:\n```python\n"
                      "def f(x):\n    return x\n```\nCompare the trade-offs."}]}


def test_alias_takes_the_cheapest_adequate_backend():
    d = route(policy(), "bulkhead/auto", "chat", SIMPLE)
    assert d.backend.name == "cheap" and d.difficulty == 1
    assert [b.name for b in d.fallbacks] == ["local-small", "mid", "local-big", "strong"]


def test_hard_prompt_goes_to_a_stronger_backend():
    assert difficulty(HARD, 60) == 3
    d = route(policy(), "bulkhead/auto", "chat", HARD)
    assert d.backend.name == "local-big" and d.min_quality == 4
    assert [b.name for b in d.fallbacks] == ["strong"]


def test_require_internal_never_offers_an_external_backend():
    d = route(policy(), "bulkhead/auto", "chat", SIMPLE, risk=Risk("high", "require_internal"))
    assert {d.backend.name, *(b.name for b in d.fallbacks)} == {"local-small", "local-big"}
    rejected = {v.backend: v.code for v in d.verdicts if not v.accepted}
    assert rejected["cheap"] == "trust" and rejected["strong"] == "trust"


def test_named_external_model_with_internal_required_is_refused_unless_substitution_is_on():
    with pytest.raises(APIError) as info:
        route(policy(), "mid", "chat", SIMPLE, risk=Risk("high", "require_internal"))
    assert info.value.status == 403 and info.value.code == "no_allowed_backend"
    d = route(policy(substitute_named=True), "mid", "chat", SIMPLE, risk=Risk("high", "require_internal"))
    assert d.backend.trust == "internal"


def test_named_model_is_served_as_named_with_only_adequate_fallbacks_when_substitution_is_on():
    assert route(policy(), "strong", "chat", SIMPLE).fallbacks == ()
    d = route(policy(substitute_named=True), "mid", "chat", SIMPLE)
    assert d.backend.name == "mid" and all(b.quality >= 3 for b in d.fallbacks)


def test_block_context_window_region_and_mode():
    with pytest.raises(APIError) as info:
        route(policy(), "bulkhead/auto", "chat", SIMPLE, risk=Risk("critical", "block"))
    assert info.value.status == 403
    d = route(policy(), "bulkhead/auto", "chat", HARD, prompt_tokens=9000)
    assert d.backend.name == "strong"  # local-big's 8k window is too small
    with pytest.raises(APIError) as info:
        route(policy(regions=["eu"]), "bulkhead/auto", "chat", SIMPLE)
    assert info.value.code == "no_allowed_backend"
    assert route(policy(), "bulkhead/auto", "embeddings", {"input": "x"}).backend.name == "embedder"


def test_latency_breaks_cost_ties():
    p = Policy.model_validate({"backends": [
        {"name": n, "adapter": "openai", "model": n, "api_base": BASE, "price": {"input_per_mtok": 1,
                                                                                 "output_per_mtok": 1}}
        for n in ("a", "b")]})
    assert route(p, "bulkhead/auto", "chat", SIMPLE, latency_ms={"a": 90.0, "b": 20.0}).backend.name == "b"
