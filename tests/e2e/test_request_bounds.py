"""Issue 24, item 7: every request's inspection is bounded. A body of tens of thousands of text
parts is refused before any stage spends seconds on it, health checks keep answering meanwhile,
and risk scoring past its time limit keeps the request inside the trust boundary."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.conftest import start_gateway

POLICY = """
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin}", trust: external}}
"""


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bounds")
    gateway = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'b.db'}", standin, redis=False,
                            policy=POLICY.format(standin=standin.base_url))
    (tmp / "policies" / "tenants").mkdir()
    (tmp / "policies" / "tenants" / "slow.yaml").write_text("risk: {timeout_s: 0.001}\n")
    gateway.cli("tenants", "create", "acme")
    gateway.cli("tenants", "create", "slow")
    gateway.keys.update(app=gateway.new_key("acme", "app"), slow=gateway.new_key("slow", "app"))
    yield gateway
    assert gateway.stop() == 0


def chat(gw, messages: list, key: str = "app") -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", json={"model": "echo", "messages": messages},
                      headers={"authorization": f"Bearer {gw.keys[key]}"}, timeout=120)


def parts(n: int) -> list[dict]:
    per = 1000
    return [{"role": "user", "content": [{"type": "text", "text": "x"}] * min(per, n - i)} for i in range(0, n, per)]


def test_a_body_of_many_parts_is_refused_and_health_keeps_answering(gw, standin):
    before = len(standin.requests)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        big = pool.submit(chat, gw, parts(60_000))
        health = [httpx.get(gw.base_url + "/healthz", timeout=10).status_code for _ in range(20)]
        r = big.result()
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_keys", r.text[:300]
    assert health == [200] * 20
    r = chat(gw, parts(5_000))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_texts", r.text[:300]
    assert len(standin.requests) == before


def test_a_message_has_at_most_1024_parts(gw):
    r = chat(gw, [{"role": "user", "content": [{"type": "text", "text": "x"}] * 1025}])
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages[0].content"


def test_risk_scoring_past_its_limit_keeps_the_request_inside(gw, standin):
    before = len(standin.requests)
    r = chat(gw, [{"role": "user", "content": "Summarise the benefits of unit testing. " * 60}], key="slow")
    assert r.headers["x-bulkhead-risk-tier"] == "high", r.text
    assert r.status_code in (403, 503) and len(standin.requests) == before  # no internal backend here
    ok = chat(gw, [{"role": "user", "content": "Summarise the benefits of unit testing."}])
    assert ok.status_code == 200
