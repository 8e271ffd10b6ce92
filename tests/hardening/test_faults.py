"""Upstream faults beyond tests/e2e/test_openai_api.py (which covers 5xx, 429 with Retry-After,
timeouts, resets after a few chunks, malformed JSON and flaky retries): streams that stall, break
mid-event, send garbage or an error, or end without `[DONE]` after their first byte end with an
error event, never a hang; failures before the first byte are clear 502/503/504s; hostile
Retry-After values stay sane; a fallback stays inside the allowed set; a crashing local MoE
backend opens its breaker and high-risk traffic gets 503, never an external detour. Every request
still gets exactly one audit record, with the fault's code."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import select

from gateway.db import create_engine
from gateway.models import AuditEvent
from gateway.telemetry import backend_label
from tests.conftest import TEST_SECRET
from tests.hardening.conftest import assert_openai_error, auth, chat

MESSAGES = [{"role": "user", "content": "hello there"}]
SSN_PROMPT = [{"role": "user", "content": "My SSN is 536-80-4398; summarise my tax position."}]
AUDITED: dict[str, str | None] = {}  # request id -> expected error code


def stream(gw, model: str, key: str = "app") -> tuple[httpx.Response, list[dict | str]]:
    """The events of a streamed chat call; the read timeout is only a guard against a hang."""
    with httpx.stream("POST", gw.base_url + "/v1/chat/completions", headers=auth(gw, key),
                      json={"model": model, "messages": MESSAGES, "stream": True}, timeout=30) as r:
        r.read()
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    return r, [e if e == "[DONE]" else json.loads(e) for e in events]


@pytest.mark.parametrize(("model", "codes"), [
    ("stall-after-first", {"upstream_timeout"}),
    ("break-mid-event", {"upstream_unavailable", "upstream_bad_response"}),
    ("garbage-event", {"upstream_bad_response"}),
    ("error-event", {"upstream_bad_response"}),
    ("no-done", {"upstream_bad_response"}),
])
def test_a_stream_that_breaks_after_its_first_byte_ends_with_an_error_event(hgw, model, codes):
    r, events = stream(hgw, model)
    assert r.status_code == 200  # already sent: the status cannot change any more
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e != "[DONE]")
    # what arrived before the break, in order; a dropped connection may lose the chunk before it
    assert "first one two three".startswith(text), text
    if model == "break-mid-event":
        assert text in ("", "first "), text  # it sends "first " and then breaks
    else:
        assert text, events
    last = events[-1]
    assert "[DONE]" not in events and last["error"]["code"] in codes, events
    assert set(last["error"]) >= {"message", "type", "code"}
    AUDITED[r.headers["x-bulkhead-request-id"]] = "stream_" + last["error"]["code"]


def test_a_slow_drip_within_the_read_timeout_completes(hgw):
    r, events = stream(hgw, "drip")  # a piece every 0.3 s, the backend's per-read timeout is 2 s
    assert r.status_code == 200 and events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "first one two three"
    AUDITED[r.headers["x-bulkhead-request-id"]] = None


@pytest.mark.parametrize(("model", "stream_it", "status", "code"), [
    ("empty-stream", True, 502, "upstream_bad_response"),
    ("stall-after-first", False, 504, "upstream_timeout"),
    ("drop", False, 503, "upstream_unavailable"),
    ("drop", True, 503, "upstream_unavailable"),
    ("json-array", False, 502, "upstream_bad_response"),
    ("html-502", False, 502, "upstream_error"),
])
def test_failures_before_the_first_byte_are_clear_gateway_errors(hgw, faults, model, stream_it, status, code):
    before = faults.count(model)
    r = chat(hgw, {"model": model, "messages": MESSAGES, "stream": stream_it})
    assert_openai_error(r, status, code)
    if model == "drop":
        assert faults.count(model) == before + 2  # its one retry, then the clear error
    AUDITED[r.headers["x-bulkhead-request-id"]] = code


@pytest.mark.parametrize("model", ["retry-after-nan", "retry-after-date"])
def test_hostile_retry_after_values_stay_sane(hgw, model):
    r = chat(hgw, {"model": model, "messages": MESSAGES})
    assert_openai_error(r, 429, "upstream_rate_limited")
    assert r.headers["retry-after"] == "1"
    AUDITED[r.headers["x-bulkhead-request-id"]] = "upstream_rate_limited"


def test_fallback_moves_only_within_the_allowed_set(hgw, standin, faults):
    """Cheapest first: `fb-broken` drops the connection, so the request falls back to `fb-ok`. A
    high-risk prompt may use only the internal `fb-internal`, which is broken too: 503, and the
    external `fb-ok` never sees it."""
    before = faults.count("drop")
    r = chat(hgw, {"model": "bulkhead/auto", "messages": MESSAGES}, key="fallback")
    assert r.status_code == 200 and r.headers["x-bulkhead-route"] == "fb-ok"
    assert faults.count("drop") == before + 1
    AUDITED[r.headers["x-bulkhead-request-id"]] = None

    sent = len(standin.requests)
    r = chat(hgw, {"model": "bulkhead/auto", "messages": SSN_PROMPT}, key="fallback")
    assert_openai_error(r, 503, "upstream_unavailable")
    assert r.headers["x-bulkhead-route"] == "fb-internal"
    assert len(standin.requests) == sent and "536-80-4398" not in r.text
    AUDITED[r.headers["x-bulkhead-request-id"]] = "upstream_unavailable"


def test_local_moe_crash_opens_its_breaker_and_high_risk_traffic_gets_503(hgw, standin):
    """The tenant's only internal backend is an in-process MoE model whose checkpoint is corrupt
    (it fails to load, as a crashed engine fails each call). Two failures (the first request's
    attempt and its retry) open its breaker; from then on the gateway refuses at once. Nothing ever
    goes to the external backends; low-risk traffic still does."""
    sent = len(standin.requests)
    codes = []
    for _ in range(3):
        r = chat(hgw, {"model": "bulkhead/auto", "messages": SSN_PROMPT}, key="moe")
        assert r.status_code == 503, r.text
        codes.append(r.json()["error"]["code"])
        AUDITED[r.headers["x-bulkhead-request-id"]] = codes[-1]
    # the first request's attempt and its retry are the two failures
    assert codes == ["upstream_unavailable", "backend_circuit_open", "backend_circuit_open"]
    assert len(standin.requests) == sent  # never an external detour
    metrics = httpx.get(hgw.base_url + "/metrics").text
    label = backend_label("local-moe", (), TEST_SECRET.encode())  # the `moe` tenant's own: not named
    assert any(line.startswith(f'bulkhead_breaker_opened_total{{backend="{label}"}}') for line in metrics.splitlines())
    assert "local-moe" not in metrics
    r = chat(hgw, {"model": "echo", "messages": MESSAGES}, key="moe")
    assert r.status_code == 200 and len(standin.requests) == sent + 1


async def test_each_fault_has_one_audit_record_with_its_code(hgw):
    assert len(AUDITED) >= 15
    engine = create_engine(hgw.database_url)
    try:
        for _ in range(100):
            async with engine.connect() as conn:
                rows = (await conn.execute(select(AuditEvent.request_id, AuditEvent.error_code).where(
                    AuditEvent.request_id.in_(list(AUDITED))))).all()
            if len(rows) >= len(AUDITED):
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert sorted(rid for rid, _ in rows) == sorted(AUDITED)  # one each
    assert {rid: code for rid, code in rows} == AUDITED
