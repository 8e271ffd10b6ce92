"""Issue 24, item 1: no string position of a request carries a protected value past the gateway.

A protected value is put at every position the request schema has (exhaustively, then with
hypothesis choosing position, value and surrounding text); whatever the gateway answers, the
recording upstream never receives the value. The tenant's risk policy lets personal data go to the
external backend, so what keeps it out is the PII stage alone."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.schemas import REQUEST_TYPES
from tests.conftest import start_gateway
from tests.pii.schema_positions import build, string_positions

POLICY = """\
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin}", trust: external}}
risk:
  pii: {{default_tier: low, bulk_tier: low, entities: {{US_SSN: low, CREDIT_CARD: low, PERSON: low,
        EMAIL_ADDRESS: low, PHONE_NUMBER: low}}}}
  domains: {{medical: {{enabled: false}}, financial: {{enabled: false}}, legal: {{enabled: false}},
            hr: {{enabled: false}}, code: {{enabled: false}}}}
  rules: []
"""
ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "embeddings": "/v1/embeddings"}
# (what is inserted, what must never arrive)
VALUES = [
    ("jane.roe@example.com", "jane.roe@example.com"),
    ("SSN 219-09-9999", "219-09-9999"),
    ("card 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
]


def positions(mode: str) -> list[tuple[str, ...]]:
    schema = REQUEST_TYPES[mode].model_json_schema()
    return sorted((p for p in string_positions(schema) if p[0] not in ("model", "bulkhead")), key=str)


CASES = [(mode, p) for mode in ENDPOINTS for p in positions(mode)]


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fields")
    gateway = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'f.db'}", standin, redis=False,
                            policy=POLICY.format(standin=standin.base_url))
    gateway.cli("tenants", "create", "acme")
    gateway.keys["app"] = gateway.new_key("acme", "app")
    yield gateway
    assert gateway.stop() == 0


def send_at(gw, standin, mode: str, position: tuple[str, ...], value: str) -> httpx.Response:
    schema = REQUEST_TYPES[mode].model_json_schema()
    body = build(schema, schema, position, value)
    body["model"] = "echo" if mode != "embeddings" else "echo"
    before = len(standin.requests)
    r = httpx.post(gw.base_url + ENDPOINTS[mode], json=body, timeout=60,
                   headers={"authorization": f"Bearer {gw.keys['app']}"})
    assert r.status_code != 500 and "error" in r.json() or r.status_code == 200, r.text
    sent = json.dumps([q.body for q in standin.requests[before:]], ensure_ascii=False)
    return r, sent


@pytest.mark.parametrize(("mode", "position"), CASES, ids=[f"{m}:{'.'.join(map(str, p))}" for m, p in CASES])
def test_an_email_at_any_position_never_reaches_the_upstream(gw, standin, mode, position):
    r, sent = send_at(gw, standin, mode, position, "jane.roe@example.com")
    assert "jane.roe@example.com" not in sent


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), value=st.sampled_from(VALUES),
       before=st.sampled_from(["", "Customer ", "note: ", "x-"]), after=st.sampled_from(["", " please", ".", "_2"]))
def test_protected_values_in_any_position_never_reach_the_upstream(gw, standin, case, value, before, after):
    mode, position = case
    inserted, protected = value
    r, sent = send_at(gw, standin, mode, position, before + inserted + after)
    assert protected not in sent, (position, r.status_code)


def test_metadata_of_the_review_is_scrubbed_and_recorded(gw, standin):
    """The review's own request: answered, with the metadata pseudonymized on the way out."""
    before = len(standin.requests)
    r = httpx.post(gw.base_url + "/v1/chat/completions", timeout=60,
                   headers={"authorization": f"Bearer {gw.keys['app']}"},
                   json={"model": "echo", "metadata": {"customer": "Jane Roe, SSN 219-09-9999"},
                         "messages": [{"role": "user", "content": "Summarize the account"}]})
    assert r.status_code == 200, r.text
    [received] = [q.body for q in standin.requests[before:]]
    assert "219-09-9999" not in received["metadata"]["customer"]
    assert "<US_SSN_" in received["metadata"]["customer"]
