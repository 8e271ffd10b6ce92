"""A partial PII treatment hot-reloaded into a running gateway keeps the built-in rows: a GitHub
token is still refused, while the one entity the overlay names gets its new treatment."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import start_gateway

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partial-pii")
    gateway = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'p.db'}", standin, redis=False,
                            extra_env={"BULKHEAD_POLICY_WATCH_SECONDS": "0", "BULKHEAD_PLATFORM_TENANT": "ops"})
    for tenant in ("ops", "acme"):
        gateway.cli("tenants", "create", tenant)
    gateway.keys.update(ops_admin=gateway.new_key("ops", "admin"), app=gateway.new_key("acme", "app"))
    gateway.policies = tmp / "policies"
    yield gateway
    assert gateway.stop() == 0


def chat(gw, text: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {gw.keys['app']}"},
                      json={"model": "echo", "messages": [{"role": "user", "content": text}]}, timeout=30)


def test_a_hot_reloaded_partial_treatment_still_refuses_a_token(gw):
    (gw.policies / "tenants").mkdir(exist_ok=True)
    # the risk stage's own secrets rule is relaxed, so that only the PII treatment stands between the
    # token and the backend (a weaker change: applied, and logged and audited as such)
    (gw.policies / "tenants" / "acme.yaml").write_text(
        "pii:\n  treatment:\n    external: {EMAIL_ADDRESS: redact}\nrisk:\n  secrets: {tier: low, action: allow}\n")
    r = httpx.post(gw.base_url + "/v1/bulkhead/admin/policies/reload",
                   headers={"authorization": f"Bearer {gw.keys['ops_admin']}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert [line for line in r.json()["changes"]["acme"] if line.startswith("pii")] == [
        "pii.treatment.external.EMAIL_ADDRESS: unset -> redact"]
    # the overlay is in force: the e-mail address reaches the echoing backend redacted
    ok = chat(gw, "write to maria@example.com please")
    assert ok.status_code == 200, ok.text
    assert "[EMAIL_ADDRESS]" in ok.json()["choices"][0]["message"]["content"]
    # and the secrets block it did not name is still in force
    refused = chat(gw, f"my deploy token is {TOKEN}, why does CI fail?")
    assert refused.status_code in (400, 403), refused.text
    assert "SECRET" in refused.text and TOKEN not in refused.text and "<SECRET_1>" not in refused.text
    log = gw.log.read_text()
    assert "weaker" in log and "risk.secrets.action: block -> allow" in log and TOKEN not in log
