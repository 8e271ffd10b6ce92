"""/metrics: with BULKHEAD_METRICS_TOKEN set it answers only `Authorization: Bearer <token>`, and a
backend only one tenant's overlay declares is labelled by a keyed hash, never by its name (nor its
tokens and cost under its name); backends every tenant shares keep theirs."""

from __future__ import annotations

import httpx
import pytest

from gateway.telemetry import backend_label
from tests.conftest import TEST_SECRET, e2e_policy, start_gateway

FAST = "\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n"
TOKEN = "metrics-token-for-the-tests"
PRIVATE = "initech-skunkworks-llm"
OVERLAY = """\
backends:
  - {{name: {name}, adapter: openai, model: echo, api_base: '{standin}', trust: external,
     price: {{input_per_mtok: 3, output_per_mtok: 3}}}}
"""


@pytest.fixture(scope="module")
def mgw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "policies" / "tenants").mkdir(parents=True)
    (tmp / "policies" / "tenants" / "initech.yaml").write_text(OVERLAY.format(name=PRIVATE, standin=standin.base_url))
    gw = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'm.db'}", standin, redis=False,
                       policy=e2e_policy(standin, FAST),
                       extra_env={"BULKHEAD_METRICS_TOKEN": TOKEN, "BULKHEAD_POLICY_WATCH_SECONDS": "0"})
    for tenant in ("acme", "initech"):
        gw.cli("tenants", "create", tenant)
        gw.keys[tenant] = gw.new_key(tenant, "app")
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-3000:]


def chat(gw, tenant: str, model: str) -> None:
    r = httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {gw.keys[tenant]}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hello"}]}, timeout=60)
    assert r.status_code == 200 and r.headers["x-bulkhead-route"] == model, r.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_metrics_needs_the_token(mgw, authorization):
    r = httpx.get(mgw.base_url + "/metrics", headers={"authorization": authorization} if authorization else {})
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_metrics_token" and err["type"] == "authentication_error" and err["message"]
    assert "bulkhead_requests_total" not in r.text


def test_tenant_only_backends_are_not_named(mgw):
    chat(mgw, "initech", PRIVATE)
    chat(mgw, "acme", "echo")
    r = httpx.get(mgw.base_url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert PRIVATE not in r.text and "initech" not in r.text
    label = f'backend="{backend_label(PRIVATE, (), TEST_SECRET.encode())}"'
    assert label.startswith('backend="private-')
    for series in ("bulkhead_requests_total", "bulkhead_tokens_total", "bulkhead_cost_usd_total"):
        assert any(line.startswith(series) and label in line for line in lines), series
        assert any(line.startswith(series) and 'backend="echo"' in line for line in lines), series  # shared
