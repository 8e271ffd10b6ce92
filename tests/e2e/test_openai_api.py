"""The gateway as apps see it: the official `openai` package against a running gateway process,
on Postgres and on SQLite, with the stand-in provider behind it. Every request's id is collected
and `test_every_request_has_one_audit_row` (last in this module) checks the audit table for each."""

from __future__ import annotations

import json
import os
import time

import httpx
import openai
import pytest
from sqlalchemy import select

from gateway.db import create_engine
from gateway.models import AuditEvent

SEEN: dict[str, list[tuple[str, int]]] = {}
WHERE: dict[str, str] = {}


def remember(gateway, response_headers, status: int) -> None:
    rid = response_headers["x-bulkhead-request-id"]
    SEEN.setdefault(gateway.database_url, []).append((rid, status))
    WHERE[rid] = os.environ.get("PYTEST_CURRENT_TEST", "?")


def client(gateway, key: str = "app", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=gateway.keys.get(key, key), max_retries=0, **kw)


def expect_error(gateway, exc_type, fn, status: int, code: str | None = None):
    with pytest.raises(exc_type) as info:
        fn()
    err = info.value
    assert err.status_code == status
    body = err.response.json()
    assert set(body["error"]) >= {"message", "type", "code", "param"}
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in err.response.text
    remember(gateway, err.response.headers, status)
    return body["error"]


MESSAGES = [{"role": "user", "content": "hello there"}]


def test_chat_non_streaming(gateway, standin):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="echo", messages=MESSAGES, temperature=0.2, top_p=0.9, seed=7, stop=["zz"], max_tokens=50,
        user="u-1", n=2,
    )
    remember(gateway, raw.headers, 200)
    resp = raw.parse()
    assert resp.choices[0].message.content == "echo: hello there"
    assert len(resp.choices) == 2
    assert raw.headers["x-bulkhead-route"] == "echo"
    assert float(raw.headers["x-bulkhead-overhead-ms"]) >= 0
    usage = resp.usage  # echo is priced at $1 in / $2 out per million tokens in the test policy
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert float(raw.headers["x-bulkhead-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    sent = standin.bodies()[-1]
    assert sent["model"] == "echo"
    assert sent["temperature"] == 0.2 and sent["seed"] == 7 and sent["stop"] == ["zz"] and sent["n"] == 2
    assert sent["max_tokens"] == 50 and sent["user"] == "u-1"


def test_chat_fast_path_and_litellm_path_agree(gateway, standin):
    for model in ("gpt-4o-mini", "via-litellm"):
        raw = client(gateway).chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, max_completion_tokens=20, response_format={"type": "text"},
        )
        remember(gateway, raw.headers, 200)
        assert raw.parse().choices[0].message.content == "echo: hello there"
        assert raw.headers["x-bulkhead-route"] == model
        sent = standin.bodies()[-1]
        assert sent["model"] == "gpt-4o-mini"  # the provider model, prefix stripped
        # the provider key comes from the environment variable the policy names, never from the client
        assert standin.requests[-1].headers["Authorization"] == "Bearer sk-standin-provider-key"
        assert sent["max_completion_tokens"] == 20
        assert sent["response_format"] == {"type": "text"}


@pytest.mark.parametrize("model", ["echo", "via-litellm"])
def test_chat_streaming_with_usage(gateway, model):
    with client(gateway).chat.completions.with_streaming_response.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True},
    ) as resp:
        remember(gateway, resp.headers, 200)
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # really streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_chat_streaming_without_usage_hides_it(gateway):
    with client(gateway).chat.completions.with_streaming_response.create(
        model="echo", messages=MESSAGES, stream=True,
    ) as resp:
        remember(gateway, resp.headers, 200)
        chunks = list(resp.parse())
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {
    "echo": {"type": "string"}}}}}]


def test_tools_non_streaming_and_streaming(gateway, standin):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="echo", messages=MESSAGES, tools=TOOLS, tool_choice="auto", parallel_tool_calls=False,
    )
    remember(gateway, raw.headers, 200)
    call = raw.parse().choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"echo": "echo: hello there"}
    assert standin.bodies()[-1]["tools"] == TOOLS

    with client(gateway).chat.completions.with_streaming_response.create(
        model="echo", messages=MESSAGES, tools=TOOLS, stream=True,
    ) as resp:
        remember(gateway, resp.headers, 200)
        chunks = list(resp.parse())
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    args = "".join(tc.function.arguments or "" for tc in deltas)
    assert json.loads(args) == {"echo": "echo: hello there"}

    # a tool result sent back through the gateway reaches the provider unchanged
    messages = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "42 widgets"},
    ]
    raw = client(gateway).chat.completions.with_raw_response.create(model="echo", messages=messages)
    remember(gateway, raw.headers, 200)
    assert raw.parse().choices[0].message.content == "echo: 42 widgets"
    assert standin.bodies()[-1]["messages"][2]["tool_call_id"] == call.id


def test_completions(gateway):
    raw = client(gateway).completions.with_raw_response.create(model="echo", prompt="say hi", max_tokens=5)
    remember(gateway, raw.headers, 200)
    assert raw.parse().choices[0].text == "echo: say hi"


def test_completions_streaming(gateway):
    with client(gateway).completions.with_streaming_response.create(
        model="echo", prompt="stream me", stream=True,
    ) as resp:
        remember(gateway, resp.headers, 200)
        chunks = list(resp.parse())
    assert chunks and all(c.object == "text_completion" for c in chunks)


def test_model_names_shaped_like_urls_reach_nothing(gateway, standin):
    before = len(standin.requests)
    for model in ("http://127.0.0.2:9/v1", "openai/gpt-4o-mini", "../echo", "echo@127.0.0.3"):
        expect_error(gateway, openai.NotFoundError, lambda m=model: client(gateway).chat.completions.create(
            model=m, messages=MESSAGES), 404, "model_not_found")
    assert len(standin.requests) == before


@pytest.mark.parametrize("model", ["embed", "embed-litellm"])
def test_embeddings(gateway, model):
    raw = client(gateway).embeddings.with_raw_response.create(model=model, input=["alpha", "beta"])
    remember(gateway, raw.headers, 200)
    resp = raw.parse()
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 8
    assert resp.data[0].embedding != resp.data[1].embedding


def test_models_lists_only_what_the_key_may_use(gateway):
    raw = client(gateway).models.with_raw_response.list()
    remember(gateway, raw.headers, 200)
    names = {m.id for m in raw.parse().data}
    assert {"echo", "gpt-4o-mini", "embed"} <= names
    raw = client(gateway, "limited").models.with_raw_response.list()
    remember(gateway, raw.headers, 200)
    assert [m.id for m in raw.parse().data] == ["echo", "bulkhead/auto"]  # the alias routes within the allowlist
    raw = client(gateway).models.with_raw_response.retrieve("echo")
    remember(gateway, raw.headers, 200)
    assert raw.parse().id == "echo"


def test_400_errors(gateway):
    h = {"authorization": f"Bearer {gateway.keys['app']}", "content-type": "application/json"}
    url = gateway.base_url + "/v1/chat/completions"
    r = httpx.post(url, headers=h, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    remember(gateway, r.headers, 400)
    r = httpx.post(url, headers=h, content=b'{"model": "echo", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert r.status_code == 400 and r.json()["error"]["code"] in ("json_too_deep", "invalid_json")
    remember(gateway, r.headers, 400)
    r = httpx.post(url, headers=h, content=b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    remember(gateway, r.headers, 400)
    deep = {"model": "echo", "messages": MESSAGES, "metadata": {}}
    node = deep
    for _ in range(70):
        node["n"] = {}
        node = node["n"]
    r = httpx.post(url, headers=h, json=deep)
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep"
    remember(gateway, r.headers, 400)
    for field, value in (("api_base", "http://127.0.0.2"), ("base_url", "http://x"), ("api_key", "sk-x")):
        r = httpx.post(url, headers=h, json={"model": "echo", "messages": MESSAGES, field: value})
        assert r.status_code == 400 and r.json()["error"]["param"] == field
        remember(gateway, r.headers, 400)
    r = httpx.post(url, headers={**h, "x-api-base": "http://127.0.0.3"}, json={"model": "echo", "messages": MESSAGES})
    assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_override_forbidden"
    remember(gateway, r.headers, 400)
    err = expect_error(gateway, openai.BadRequestError, lambda: client(gateway).chat.completions.create(
        model="echo", messages=MESSAGES, extra_body={"frobnicate": 1}), 400, "unknown_parameter")
    assert err["param"] == "frobnicate"


def test_401_errors(gateway):
    expect_error(gateway, openai.AuthenticationError, lambda: client(gateway, "bh-wrong").models.list(), 401,
                 "invalid_api_key")
    r = httpx.get(gateway.base_url + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    remember(gateway, r.headers, 401)
    # the Azure-style header works too
    r = httpx.get(gateway.base_url + "/v1/models", headers={"api-key": gateway.keys["app"]})
    assert r.status_code == 200
    remember(gateway, r.headers, 200)


def test_revocation_takes_effect_on_next_request(gateway):
    key = gateway.new_key("acme", "app")
    raw = client(gateway, key).models.with_raw_response.list()
    remember(gateway, raw.headers, 200)
    key_id = next(line.split("\t")[0] for line in gateway.cli("keys", "list", "--tenant", "acme").splitlines()
                  if line.split("\t")[3].startswith(key[:10]))
    gateway.cli("keys", "revoke", key_id)
    expect_error(gateway, openai.AuthenticationError, lambda: client(gateway, key).models.list(), 401, "key_revoked")


def test_expired_key(gateway):
    key = gateway.new_key("acme", "app", extra=("--expires", "2020-01-01T00:00:00"))
    expect_error(gateway, openai.AuthenticationError, lambda: client(gateway, key).models.list(), 401, "key_expired")


def test_403_errors(gateway):
    expect_error(gateway, openai.PermissionDeniedError, lambda: client(gateway, "compliance").chat.completions.create(
        model="echo", messages=MESSAGES), 403, "insufficient_role")
    expect_error(gateway, openai.PermissionDeniedError, lambda: client(gateway, "limited").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES), 403, "model_not_allowed")


def test_404_errors(gateway):
    expect_error(gateway, openai.NotFoundError, lambda: client(gateway).chat.completions.create(
        model="no-such-model", messages=MESSAGES), 404, "model_not_found")
    r = httpx.get(gateway.base_url + "/v1/nothing-here", headers={"authorization": f"Bearer {gateway.keys['app']}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    remember(gateway, r.headers, 404)


def test_413_body_too_large(gateway):
    big = "x" * (4 * 1024 * 1024 + 10)
    expect_error(gateway, openai.APIStatusError, lambda: client(gateway).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": big}]), 413, "request_too_large")


def test_422_wrong_types(gateway):
    err = expect_error(gateway, openai.UnprocessableEntityError, lambda: client(gateway).chat.completions.create(
        model="echo", messages=[{"role": "robot", "content": "hi"}]), 422)
    assert err["param"] == "messages[0].role"
    err = expect_error(gateway, openai.UnprocessableEntityError, lambda: client(gateway).chat.completions.create(
        model="echo", messages=MESSAGES, temperature=7), 422)
    assert err["param"] == "temperature"
    err = expect_error(gateway, openai.UnprocessableEntityError, lambda: client(gateway).chat.completions.create(
        model="echo", messages=[]), 422)
    assert err["param"] == "messages"


@pytest.mark.parametrize(
    ("model", "exc", "status", "code"),
    [
        ("fail-429", openai.RateLimitError, 429, "upstream_rate_limited"),
        ("fail-500", openai.InternalServerError, 502, "upstream_error"),
        ("malformed", openai.InternalServerError, 502, "upstream_bad_response"),
        ("fail-503", openai.InternalServerError, 503, "upstream_unavailable"),
        ("down", openai.InternalServerError, 503, "upstream_unavailable"),
        ("slow", openai.InternalServerError, 504, "upstream_timeout"),
        ("no-credentials", openai.InternalServerError, 503, "backend_not_configured"),
    ],
)
def test_upstream_failures(gateway, model, exc, status, code):
    expect_error(gateway, exc, lambda: client(gateway).chat.completions.create(model=model, messages=MESSAGES),
                 status, code)


def test_upstream_429_carries_retry_after(gateway):
    with pytest.raises(openai.RateLimitError) as info:
        client(gateway).chat.completions.create(model="fail-429", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "7"
    remember(gateway, info.value.response.headers, 429)


def test_transient_failure_is_retried(gateway):
    raw = client(gateway).chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES)
    remember(gateway, raw.headers, 200)
    assert raw.parse().choices[0].message.content == "echo: hello there"


def test_stream_broken_mid_way_ends_with_error_event(gateway):
    with httpx.stream("POST", gateway.base_url + "/v1/chat/completions",
                      headers={"authorization": f"Bearer {gateway.keys['app']}"},
                      json={"model": "reset", "messages": MESSAGES, "stream": True}, timeout=20) as r:
        remember(gateway, r.headers, 200)
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200
    last = json.loads(events[-1][6:])
    assert last["error"]["code"] in ("upstream_unavailable", "upstream_bad_response")


def test_probes_and_openapi(gateway):
    assert httpx.get(gateway.base_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.base_url + "/readyz").json()
    assert ready["checks"] == {"database": "ok", "redis": "ok"}
    metrics = httpx.get(gateway.base_url + "/metrics").text
    assert "bulkhead_requests_total" in metrics and "bulkhead_request_seconds_bucket" in metrics
    spec = httpx.get(gateway.base_url + "/openapi.json").json()
    routes = {(path, m) for path, ops in spec["paths"].items() for m in ops}
    assert {("/v1/chat/completions", "post"), ("/v1/completions", "post"), ("/v1/embeddings", "post"),
            ("/v1/models", "get"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")} <= routes


async def test_every_request_has_one_audit_row(gateway):
    seen = SEEN.get(gateway.database_url, [])
    assert len(seen) >= 5
    engine = create_engine(gateway.database_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            async with engine.connect() as conn:
                rows = (await conn.execute(select(AuditEvent.__table__))).mappings().all()
            by_id: dict[str, list] = {}
            for row in rows:
                by_id.setdefault(row["request_id"], []).append(row)
            if all(rid in by_id for rid, _ in seen) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        await engine.dispose()
    for rid, status in seen:
        assert len(by_id.get(rid, [])) == 1, f"{rid} ({WHERE[rid]}) has {len(by_id.get(rid, []))} audit rows"
        assert by_id[rid][0]["status"] == status
    assert len(rows) == len(by_id), "duplicate audit rows"
    chat = "/v1/chat/completions"
    ok = [by_id[rid][0] for rid, status in seen if status == 200 and by_id[rid][0]["endpoint"] == chat]
    assert all(r["tenant_id"] and r["key_id"] and r["backend"] and r["policy_version"] for r in ok)
    assert all(r["tokens_in"] > 0 and r["tokens_out"] > 0 for r in ok if not r["error_code"])
    assert any(float(r["cost_usd"]) > 0 for r in ok if r["backend"] == "gpt-4o-mini")  # litellm price map
    assert all({"authenticate", "decide", "call"} <= set(r["stages"]) for r in ok)
    assert any(r["stream"] for r in ok)
    errors = [by_id[rid][0] for rid, status in seen if status >= 400]
    assert all(r["error_code"] for r in errors)
    # the audit never holds prompt or answer text
    assert not any("hello there" in json.dumps({k: str(v) for k, v in r.items()}) for r in rows)
