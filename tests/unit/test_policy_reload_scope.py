"""A tenant's own reload touches only its overlay; policy events find each affected tenant's chain,
including a tenant this process learns of only later (its first key). A weaker policy is applied but
logged at warning and audited as weaker; the log line shows each changed scope's own versions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapters.registry import AdapterRegistry
from gateway.auth import KeyStore
from gateway.policy.loader import load_policy_set
from gateway.policy.reload import PolicyReloader

BASE = """\
backends:
  - {name: small, adapter: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:9/v1"}
limits: {rpm_per_key: 60}
"""


class _Audit:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def submit(self, row: dict) -> None:
        self.events.append(row)

    def on(self, tenant_id: str | None) -> list[dict]:
        return [e for e in self.events if e["tenant_id"] == tenant_id]


class _Gateway:
    def __init__(self, directory: Path) -> None:
        self.policies = load_policy_set(directory)
        self.adapters = AdapterRegistry()
        self.audit = _Audit()
        self.keys = KeyStore(None, b"secret")  # only its tenant directory is used here


@pytest.fixture
async def gw(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE)
    (tmp_path / "tenants").mkdir()
    gateway = _Gateway(tmp_path)
    gateway.reloader = PolicyReloader(gateway, tmp_path)
    gateway.dir = tmp_path
    yield gateway
    await gateway.adapters.aclose()


def overlay(gw, tenant: str, text: str) -> None:
    (gw.dir / "tenants" / f"{tenant}.yaml").write_text(text)


async def test_tenant_reload_applies_its_overlay_over_the_default_in_force(gw):
    gw.keys._learn("acme", "ten_acme")
    overlay(gw, "acme", "limits: {rpm_per_key: 5}\n")
    overlay(gw, "beta", "limits: {rpm_per_key: -1}\n")  # broken, and not acme's business
    (gw.dir / "default.yaml").write_text(BASE.replace("60", "61"))  # a platform edit, not yet applied
    result = await gw.reloader.reload("api", actor="key_a", tenant=("acme", "ten_acme"))
    assert result.applied and list(result.changes) == ["acme"] and not result.errors
    assert gw.policies.for_tenant("acme").limits.rpm_per_key == 5
    assert gw.policies.default.limits.rpm_per_key == 60 and "beta" not in gw.policies.tenants
    [event] = gw.audit.events
    assert event["tenant_id"] == "ten_acme" and event["key_id"] == "key_a" and event["detail"]["scope"] == "tenant"
    overlay(gw, "acme", "limits: {rpm_per_key: 0}\n")
    result = await gw.reloader.reload("api", actor="key_a", tenant=("acme", "ten_acme"))
    assert not result.applied and all("acme.yaml" in e for e in result.errors)
    assert gw.audit.events[-1]["kind"] == "policy.rejected" and gw.audit.events[-1]["tenant_id"] == "ten_acme"


async def test_global_reload_writes_one_event_per_tenant_on_its_chain(gw):
    gw.keys._learn("acme", "ten_acme")
    overlay(gw, "beta", "limits: {rpm_per_key: 7}\n")
    (gw.dir / "default.yaml").write_text(BASE.replace("60", "61"))
    result = await gw.reloader.reload("sighup")
    assert set(result.changes) == {"default", "beta"}
    [summary] = gw.audit.on(None)
    assert set(summary["detail"]["changes"]) == {"default", "beta"}
    [acme] = gw.audit.on("ten_acme")  # no overlay: the default's change is its change
    assert list(acme["detail"]["changes"]) == ["default"] and acme["key_id"] is None
    assert not gw.audit.on("ten_beta")  # not seen yet: held until its first key
    gw.keys._learn("beta", "ten_beta")
    [beta] = gw.audit.on("ten_beta")
    assert list(beta["detail"]["changes"]) == ["beta"] and beta["policy_version"] == result_version(gw, "beta")
    gw.keys._learn("gamma", "ten_gamma")  # a tenant without an overlay, seen later: the default's change
    [gamma] = gw.audit.on("ten_gamma")
    assert list(gamma["detail"]["changes"]) == ["default"]
    gw.keys._learn("beta", "ten_beta")  # seen again: nothing is delivered twice
    assert len(gw.audit.on("ten_beta")) == 1


def result_version(gw, tenant: str) -> str:
    return gw.policies.for_tenant(tenant).version


async def test_reload_applies_a_weaker_policy_but_logs_and_audits_it(gw, caplog):
    (gw.dir / "tenants" / "acme.yaml").write_text("pii:\n  treatment:\n    external: {SECRET: pseudonymize}\n")
    with caplog.at_level(logging.INFO, logger="bulkhead.policy"):
        result = await gw.reloader.reload("watch")
    assert result.applied and gw.policies.for_tenant("acme").pii.treatment.for_entity("external", "SECRET") == \
        "pseudonymize"
    assert result.weaker == {"acme": ["pii.treatment.external.SECRET: block -> pseudonymize"]}
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "weaker" in warning.getMessage() and "SECRET: block -> pseudonymize" in warning.getMessage()
    [summary] = [e for e in gw.audit.events if e["tenant_id"] is None]
    assert summary["detail"]["weaker"] == result.weaker


async def test_reload_log_line_shows_the_overlays_own_versions(gw, caplog):
    before = gw.policies.for_tenant("acme").version
    (gw.dir / "tenants" / "acme.yaml").write_text("limits: {rpm_per_key: 5}\n")
    with caplog.at_level(logging.INFO, logger="bulkhead.policy"):
        result = await gw.reloader.reload("watch")
    after = gw.policies.for_tenant("acme").version
    assert result.applied and before != after and gw.policies.default.version == before
    [line] = [r.getMessage() for r in caplog.records if "applied" in r.getMessage()]
    assert f"acme {before[:12]} -> {after[:12]}" in line and not result.weaker
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
