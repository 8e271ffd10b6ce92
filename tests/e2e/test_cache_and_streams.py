"""Issue 24, items 2 and 3, through a running gateway on Postgres and Redis.

2. The response cache (Redis-backed here) keeps only answers that passed every check: an answer the
   output scan or the grounding check withheld is withheld again on an identical request, never
   served as a hit; a hit is scanned again and its audit record names the checks it passed.
3. A stream the client drops after `finish_reason`, before the usage chunk, is charged for what was
   streamed, not refunded whole."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import start_gateway

CONTEXT = "Invoice 2231 totals 1,200 dollars and is due on 14 March."
POLICY = """
backends:
  - {{name: say, adapter: openai, model: say, api_base: "{standin}", trust: external}}
  - {{name: leak, adapter: openai, model: leak, api_base: "{standin}", trust: external}}
  - {{name: checked, adapter: openai, model: say, api_base: "{standin}", trust: external}}
  - {{name: late-usage, adapter: openai, model: late-usage, api_base: "{standin}", trust: external,
     price: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}}}
cache: {{enabled: true, ttl_seconds: 300}}
pii:
  output_scan: {{action: block}}
risk: {{embeddings: {{enabled: false}}}}
hallucination:
  timeout_s: 30
  rules:
    - {{when: {{models: [checked], context: true}}, checks: [grounding], action: block}}
"""


@pytest.fixture(scope="module")
def gw(pg_database_factory, standin, tmp_path_factory):
    gateway = start_gateway(tmp_path_factory.mktemp("cache"), pg_database_factory(), standin,
                            policy=POLICY.format(standin=standin.base_url))
    gateway.cli("tenants", "create", "acme")
    gateway.keys["app"] = gateway.new_key("acme", "app")
    gateway.keys["compliance"] = gateway.new_key("acme", "compliance")
    yield gateway
    assert gateway.stop() == 0


def chat(gw, model: str, text: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(gw.base_url + "/v1/chat/completions", json=body, timeout=120,
                      headers={"authorization": f"Bearer {gw.keys['app']}"})


def event(gw, request_id: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        r = httpx.get(f"{gw.base_url}/v1/bulkhead/audit/events/{request_id}", timeout=30,
                      headers={"authorization": f"Bearer {gw.keys['compliance']}"})
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.1)


def test_an_answer_the_output_scan_withheld_is_never_served_from_the_cache(gw):
    for _ in range(3):
        r = chat(gw, "leak", "Who is the account manager?")
        assert r.status_code == 502 and r.json()["error"]["code"] == "answer_blocked", r.text
        assert r.headers.get("x-bulkhead-cache") != "hit"
        assert "219-09-9999" not in r.text and "jane.roe" not in r.text


def test_an_answer_the_grounding_check_withheld_is_never_served_from_the_cache(gw):
    invented = "The invoice totals 9,750 dollars."
    for _ in range(2):
        r = chat(gw, "checked", invented, bulkhead={"context": [CONTEXT]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "answer_unsupported", r.text


def test_a_passing_answer_is_cached_with_the_checks_it_passed(gw):
    grounded = "Invoice 2231 totals 1,200 dollars."
    first = chat(gw, "checked", grounded, bulkhead={"context": [CONTEXT]})
    assert first.status_code == 200 and first.headers["x-bulkhead-cache"] == "miss", first.text
    second = chat(gw, "checked", grounded, bulkhead={"context": [CONTEXT]})
    assert second.status_code == 200 and second.headers["x-bulkhead-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    record = event(gw, second.headers["x-bulkhead-request-id"])
    checks = record.get("checks") or record.get("event", {}).get("checks")
    assert checks and all(c["verdict"] == "supported" and c["cached"] for c in checks), record


def test_a_hit_is_restored_with_the_callers_own_values(gw):
    a = chat(gw, "say", "Please greet jane.roe@example.com politely.")
    b = chat(gw, "say", "Please greet max.mustermann@example.org politely.")
    assert a.status_code == b.status_code == 200
    assert b.headers["x-bulkhead-cache"] == "hit"
    assert "max.mustermann@example.org" in b.json()["choices"][0]["message"]["content"]
    assert "jane.roe" not in b.text


def test_a_stream_dropped_before_its_usage_chunk_is_charged_for_what_was_streamed(gw):
    headers = {"authorization": f"Bearer {gw.keys['app']}"}
    body = {"model": "late-usage", "stream": True, "max_tokens": 50,
            "messages": [{"role": "user", "content": "Summarise the benefits of unit testing in a sentence."}]}
    with httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        request_id = r.headers["x-bulkhead-request-id"]
        for line in r.iter_lines():
            if '"finish_reason":"stop"' in line.replace(" ", ""):
                break  # the client has its answer and goes away before the usage chunk
    record = event(gw, request_id)
    flat = {**record, **(record.get("event") or {})}
    assert flat["tokens_in"] > 0 and flat["tokens_out"] > 0, record
    assert float(flat["cost_usd"]) > 0


def test_a_streamed_answer_with_new_personal_data_is_recorded_as_leaked(gw):
    """A stream cannot be withheld once sent; the output scan still runs after it and its audit
    record says what leaked (types and counts, never the values)."""
    headers = {"authorization": f"Bearer {gw.keys['app']}"}
    body = {"model": "leak", "stream": True, "messages": [{"role": "user", "content": "Who manages the account?"}]}
    with httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        request_id = r.headers["x-bulkhead-request-id"]
        text = "".join(r.iter_text())
    assert "[DONE]" in text
    record = event(gw, request_id)
    flat = {**record, **(record.get("event") or {})}
    assert flat["pii"]["leaked"].keys() >= {"US_SSN", "EMAIL_ADDRESS"}, flat["pii"]
    assert "219-09-9999" not in str(record) and "jane.roe" not in str(record)
