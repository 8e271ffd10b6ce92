"""Hallucination checks through HTTP: a grounded answer passes, an invented number is flagged,
`block` withholds, `escalate` re-asks a stronger allowed backend, streams get a comment line, and
every outcome lands in the audit chain and in `hallucination_checks`."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import select

from gateway.db import create_engine
from gateway.models import AuditEvent, HallucinationCheck
from tests.conftest import start_gateway

CONTEXT = "The invoice total is 420 dollars. Payment is due on March 3 to Northwind Traders."
GROUNDED = "The invoice total is 420 dollars and payment is due on March 3."
INVENTED = "The invoice total is 9,750 dollars and payment is due on March 3."

POLICY = """
backends:
  - {name: flagged, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: recorded, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: blocked, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: escalating, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: strong, adapter: openai, model: quote, api_base: "{standin}", quality: 5}
  - {name: cascade-all, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: cascade-none, adapter: openai, model: say, api_base: "{standin}", quality: 2}
  - {name: judge, adapter: openai, model: judge, api_base: "{standin}", quality: 1, trust: internal}
pii: {enabled: false}
risk: {embeddings: {enabled: false}}
hallucination:
  timeout_s: 30
  buffer_streams: false
  judge_backend: judge
  rules:
    - {when: {models: [cascade-all]}, checks: [grounding, judge], judge_band: [0, 1], action: block}
    - {when: {models: [cascade-none]}, checks: [grounding, judge], judge_band: [1, 1], action: block}
    - {when: {models: [flagged], context: true}, checks: [grounding], action: flag}
    - {when: {models: [recorded], context: true}, checks: [grounding], action: record}
    - {when: {models: [blocked], context: true}, checks: [grounding], action: block}
    - {when: {models: [escalating], context: true}, checks: [grounding], action: escalate}
"""


@pytest.fixture(scope="module")
def gw(pg_database_factory, standin, tmp_path_factory):
    url = pg_database_factory()
    gateway = start_gateway(tmp_path_factory.mktemp("hal"), url, standin,
                            policy=POLICY.replace("{standin}", standin.base_url))
    gateway.cli("tenants", "create", "clinic")
    gateway.keys["app"] = gateway.new_key("clinic", "app")
    yield gateway
    assert gateway.stop() == 0


def ask(gw, model: str, answer: str, *, stream: bool = False, context_in_system: bool = False) -> httpx.Response:
    messages = [{"role": "user", "content": answer}]
    body = {"model": model, "messages": messages, "stream": stream}
    if context_in_system:
        messages.insert(0, {"role": "system", "content": CONTEXT})
    else:
        body["bulkhead"] = {"context": [CONTEXT]}
    return httpx.post(gw.base_url + "/v1/chat/completions", json=body, timeout=120,
                      headers={"authorization": f"Bearer {gw.keys['app']}"})


def test_grounded_answer_passes_and_invented_number_is_flagged(gw):
    ok = ask(gw, "flagged", GROUNDED)
    assert ok.status_code == 200 and ok.headers["x-bulkhead-grounding"].startswith("supported; score=")
    assert ok.json()["bulkhead"]["grounding"]["verdict"] == "supported"
    cited = ask(gw, "flagged", "**Answer:** " + GROUNDED.replace(" and", " [1] and") + " [1]\n\n[1]: invoice")
    assert cited.headers["x-bulkhead-grounding"].startswith("supported; score=")
    bad = ask(gw, "flagged", INVENTED)
    assert bad.status_code == 200 and bad.headers["x-bulkhead-grounding"].startswith("unsupported; score=")
    body = bad.json()
    assert body["choices"][0]["message"]["content"].endswith(INVENTED)  # flagged, still answered
    check = body["bulkhead"]["grounding"]["checks"][0]
    assert check["kind"] == "grounding" and check["score"] < 0.5 and check["claims"]


def test_record_is_silent(gw):
    r = ask(gw, "recorded", INVENTED)
    assert r.status_code == 200 and "x-bulkhead-grounding" not in r.headers and "bulkhead" not in r.json()


def test_block_withholds_an_unsupported_answer(gw):
    assert ask(gw, "blocked", GROUNDED).status_code == 200
    # An honest "the context does not say" is not an unsupported answer.
    assert ask(gw, "blocked", "The provided documents do not specify a late fee.").status_code == 200
    r = ask(gw, "blocked", INVENTED)
    assert r.status_code == 422 and r.json()["error"]["code"] == "answer_unsupported"
    assert "9,750" not in r.text


def test_escalate_re_asks_a_stronger_allowed_backend(gw):
    r = ask(gw, "escalating", INVENTED, context_in_system=True)
    assert r.status_code == 200 and r.headers["x-bulkhead-route"] == "strong"
    assert r.headers["x-bulkhead-grounding"].startswith("supported")
    assert r.json()["choices"][0]["message"]["content"] == CONTEXT


def test_streams_get_a_comment_line_clients_ignore(gw):
    r = ask(gw, "flagged", INVENTED, stream=True)
    assert r.status_code == 200
    lines = r.text.split("\n\n")
    comment = next(line for line in lines if line.startswith(": bulkhead-grounding"))
    assert "unsupported" in comment and lines.index(comment) < lines.index("data: [DONE]")


def test_outcomes_are_on_record(gw):
    r = ask(gw, "escalating", INVENTED, context_in_system=True)
    rid = r.headers["x-bulkhead-request-id"]

    async def load():
        engine = create_engine(gw.database_url)
        try:
            async with engine.connect() as conn:
                event = (await conn.execute(select(AuditEvent.__table__).where(AuditEvent.request_id == rid))).first()
                checks = (await conn.execute(select(HallucinationCheck.__table__).where(
                    HallucinationCheck.request_id == rid).order_by(HallucinationCheck.id))).all()
            return event, checks
        finally:
            await engine.dispose()

    deadline = time.monotonic() + 20
    while True:
        event, checks = asyncio.run(load())
        if event is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert event is not None
    assert event.backend == "strong" and event.detail["escalated_from"] == "escalating"
    assert [c["verdict"] for c in event.checks] == ["unsupported", "supported"]  # both attempts, chained
    assert [(c.verdict, c.action, c.kind) for c in checks] == [
        ("unsupported", "escalate", "grounding"), ("supported", "escalate", "grounding")]
    row = checks[0]
    assert row.tenant_id == event.tenant_id and row.threshold > 0 and row.latency_ms >= 0
    assert all(set(c) == {"start", "end", "score", "h"} for c in row.claims)  # offsets and a hash, no text
    assert event.tokens_out > 0 and float(event.cost_usd) >= 0  # both calls billed


def judged(standin) -> int:
    return sum(1 for b in standin.bodies() if b.get("model") == "judge")


def test_a_cascade_asks_the_judge_only_inside_the_band(gw, standin):
    before = judged(standin)
    # band [0, 1]: every grounding score is uncertain, the judge (which finds it supported) decides
    r = ask(gw, "cascade-all", INVENTED)
    assert r.status_code == 200 and judged(standin) == before + 1
    # band [1, 1]: no grounding score below 1 lies in it, so the judge is skipped and the verifier's
    # verdict decides: this answer's number is invented, so block
    r = ask(gw, "cascade-none", INVENTED)
    assert r.status_code == 422 and judged(standin) == before + 1
