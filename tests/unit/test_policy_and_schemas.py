from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import APIError
from gateway.policy import Policy
from gateway.policy.loader import PolicyError, load_policy_set
from gateway.schemas import ChatCompletionRequest, EmbeddingRequest, check_headers, parse

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_default_policy_is_valid():
    policy = load_policy_set(ROOT / "policies").default
    assert policy.backends and len(policy.version) == 64


def test_policy_version_is_stable_and_content_addressed():
    a = Policy.model_validate({"backends": [{"name": "x", "model": "openai/gpt-4o-mini"}]})
    b = Policy.model_validate({"backends": [{"model": "openai/gpt-4o-mini", "name": "x"}]})
    c = Policy.model_validate({"backends": [{"name": "y", "model": "openai/gpt-4o-mini"}]})
    assert a.version == b.version != c.version


def test_policy_rejects_unknown_keys_duplicates_and_bad_urls(tmp_path):
    (tmp_path / "default.yaml").write_text("backends:\n  - {name: a, model: m, colour: red}\n")
    with pytest.raises(PolicyError, match="colour"):
        load_policy_set(tmp_path)
    with pytest.raises(ValueError, match="twice"):
        Policy.model_validate({"backends": [{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]})
    with pytest.raises(ValueError, match="http"):
        Policy.model_validate({"backends": [{"name": "a", "model": "m", "api_base": "file:///etc/passwd"}]})


def test_parse_names_the_offending_parameter():
    with pytest.raises(APIError) as info:
        parse(ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": 5}]})
    assert info.value.status == 422 and info.value.param.startswith("messages[0].content")
    with pytest.raises(APIError) as info:
        parse(ChatCompletionRequest, {"model": "m"})
    assert info.value.param == "messages" and "Missing" in info.value.message
    with pytest.raises(APIError) as info:
        parse(ChatCompletionRequest, {"model": "m", "messages": [{"role": "user"}], "n": 1000})
    assert info.value.param == "n"
    with pytest.raises(APIError) as info:
        parse(EmbeddingRequest, {"model": "m", "input": "x", "custom_llm_provider": "openai"})
    assert info.value.status == 400 and info.value.code == "upstream_override_forbidden"
    with pytest.raises(APIError):
        parse(ChatCompletionRequest, [1, 2])


def test_content_parts_and_tool_messages_are_accepted():
    req = parse(ChatCompletionRequest, {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]})
    assert len(req.messages) == 3


def test_headers_cannot_choose_the_upstream():
    check_headers({"authorization": "Bearer x", "api-key": "x", "content-type": "application/json"})
    for name in ("x-api-base", "X-Base-URL", "api_base", "x-upstream-url"):
        with pytest.raises(APIError):
            check_headers({name: "http://127.0.0.9"})


def test_json_depth_limit():
    from gateway.http.jsonio import MAX_JSON_DEPTH, _depth_exceeds

    def nest(n):
        value: object = "x"
        for _ in range(n):
            value = {"a": [value]} if n % 2 else [value]
        return value

    assert not _depth_exceeds({"messages": [{"role": "user", "content": "hi"}]}, MAX_JSON_DEPTH)
    assert not _depth_exceeds(nest(MAX_JSON_DEPTH), MAX_JSON_DEPTH)
    assert _depth_exceeds(nest(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)
