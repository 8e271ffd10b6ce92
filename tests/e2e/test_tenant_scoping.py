"""Review items against a running gateway on Postgres and Redis: a tenant's admin reloads and sees
only its own tenant's policy, policy events go on each affected tenant's audit chain, and a key an
admin key creates never exceeds it (roles, models, expiry)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.auth import ROLES
from tests.conftest import start_gateway

PRIVATE = ("backends:\n  - {name: beta-private, adapter: openai, model: beta-secret-model, api_base: '{standin}'}\n"
           "access: {models: [beta-private, echo]}\nlimits: {rpm_per_key: 7}\n")
EXTRA = "  - {name: default-extra, adapter: openai, model: echo, api_base: 'http://127.0.0.1:9/v1'}\n"


@pytest.fixture(scope="module")
def gw(standin, pg_database_factory, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scoping")
    gateway = start_gateway(tmp, pg_database_factory(), standin,
                            extra_env={"BULKHEAD_POLICY_WATCH_SECONDS": "0", "BULKHEAD_PLATFORM_TENANT": "ops"})
    for tenant in ("ops", "acme", "beta", "gamma"):
        gateway.cli("tenants", "create", tenant)
    for tenant in ("acme", "beta"):
        for role in ("admin", "app", "compliance"):
            gateway.keys[f"{tenant}_{role}"] = gateway.new_key(tenant, role)
    gateway.keys["ops_admin"] = gateway.new_key("ops", "admin")
    gateway.policy_dir = tmp / "policies"
    yield gateway
    assert gateway.stop() == 0


def h(gw, who: str) -> dict:
    return {"authorization": f"Bearer {gw.keys[who]}"}


def models(gw, who: str) -> set[str]:
    return {m["id"] for m in httpx.get(gw.base_url + "/v1/models", headers=h(gw, who)).json()["data"]}


def reload(gw, who: str = "ops_admin") -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/bulkhead/admin/policies/reload", headers=h(gw, who))


def overlay(gw, tenant: str, text: str | None) -> None:
    path = gw.policy_dir / "tenants" / f"{tenant}.yaml"
    path.parent.mkdir(exist_ok=True)
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text.replace("{standin}", gw.env["STANDIN_BASE"]))


def reset(gw) -> str:
    """No overlays, the platform's reload applied; returns the time after which this test's events lie."""
    for path in (gw.policy_dir / "tenants").glob("*.yaml"):
        path.unlink()
    default = gw.policy_dir / "default.yaml"
    default.write_text(default.read_text().replace(EXTRA, ""))
    assert reload(gw).status_code == 200
    return datetime.now(UTC).isoformat()


def policy_events(gw, who: str, since: str) -> list[dict]:
    r = httpx.get(gw.base_url + "/v1/bulkhead/audit/events", headers=h(gw, who),
                  params={"kind": "policy.applied", "since": since})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_event(gw, who: str, since: str, tenant: str, timeout: float = 10.0) -> dict | None:
    """The first policy event after `since` in `who`'s trail whose changes name `tenant`; audit
    rows are written off the request path, so this waits for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in policy_events(gw, who, since) if tenant in e["detail"]["changes"]]
        if found:
            return found[0]
        time.sleep(0.1)
    return None


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["type"] and error["message"] and "Traceback" not in r.text
    return error


# -- item 4: policy reload is scoped to the caller's tenant ----------------------------------------


def test_tenant_admin_reloads_and_sees_only_its_own_overlay(gw):
    reset(gw)
    overlay(gw, "beta", PRIVATE)
    overlay(gw, "acme", "limits: {rpm_per_key: 55}\n")
    r = reload(gw, "acme_admin")
    assert r.status_code == 200 and list(r.json()["changes"]) == ["acme"], r.text
    assert r.json()["scope"] == "tenant"
    assert "beta" not in r.text
    # acme's reload did not apply beta's pending edit either
    assert "beta-private" not in models(gw, "beta_app")
    r = reload(gw, "beta_admin")
    assert r.status_code == 200 and list(r.json()["changes"]) == ["beta"] and "acme" not in r.text
    assert "beta-private" in models(gw, "beta_app") and "beta-private" not in models(gw, "acme_app")
    # the platform's admin reloads, and sees, everything: nothing is left to apply now
    r = reload(gw)
    assert r.status_code == 200 and r.json()["scope"] == "all" and r.json()["changes"] == {}


def test_another_tenants_broken_overlay_is_neither_blocking_nor_shown(gw):
    reset(gw)
    overlay(gw, "beta", "limits:\n  rpm_per_key: -5\n")
    overlay(gw, "acme", "limits: {rpm_per_key: 56}\n")
    r = reload(gw, "acme_admin")
    assert r.status_code == 200 and list(r.json()["changes"]) == ["acme"] and "beta" not in r.text
    error = assert_error(reload(gw, "beta_admin"), 422, "policy_invalid")
    assert "beta.yaml" in error["message"] and "rpm_per_key" in error["message"]
    error = assert_error(reload(gw), 422, "policy_invalid")
    assert "beta.yaml" in error["message"]
    # a tenant admin's own broken overlay names its own file only
    overlay(gw, "acme", "limits: {rpm_per_key: -1}\n")
    error = assert_error(reload(gw, "acme_admin"), 422, "policy_invalid")
    assert "acme.yaml" in error["message"] and "beta" not in error["message"]
    reset(gw)


def test_policy_events_go_on_each_affected_tenants_chain(gw):
    since = reset(gw)
    overlay(gw, "beta", "limits: {rpm_per_key: 9}\n")
    assert reload(gw).status_code == 200
    beta = wait_event(gw, "beta_compliance", since, "beta")
    assert beta is not None, "beta's compliance key does not see beta's policy change"
    assert list(beta["detail"]["changes"]) == ["beta"] and beta["detail"]["scope"] == "all"
    assert beta["key_id"] is None  # the platform's key is not named in a tenant's trail
    assert not any("beta" in e["detail"]["changes"] for e in policy_events(gw, "acme_compliance", since))
    # a tenant admin's own reload: on its chain, with the key that made it
    overlay(gw, "acme", "limits: {rpm_per_key: 57}\n")
    assert reload(gw, "acme_admin").status_code == 200
    acme = wait_event(gw, "acme_compliance", since, "acme")
    assert acme is not None and acme["detail"]["scope"] == "tenant" and acme["key_id"].startswith("key_")
    assert acme["detail"]["old_version"] != acme["detail"]["new_version"]
    # a change of the default reaches a tenant without an overlay that has never called this gateway,
    # once its first key does
    default = gw.policy_dir / "default.yaml"
    default.write_text(default.read_text().replace("backends:\n", "backends:\n" + EXTRA, 1))
    assert reload(gw).status_code == 200
    gw.keys["gamma_compliance"] = gw.new_key("gamma", "compliance")
    gamma = wait_event(gw, "gamma_compliance", since, "default")
    assert gamma is not None and any("default-extra" in line for line in gamma["detail"]["changes"]["default"])
    reset(gw)


# -- item 8: a created key never exceeds its creator -----------------------------------------------


def test_created_key_never_exceeds_its_creator(gw):
    creator = gw.new_key("acme", "admin", extra=("--models", "echo", "--expires", "60m"))
    url = gw.base_url + "/v1/bulkhead/admin/keys"
    auth = {"authorization": f"Bearer {creator}"}
    # the review's key: every role (an admin may grant each), no model list, never expiring: it gets
    # its creator's model list and expiry
    r = httpx.post(url, headers=auth, json={"roles": list(ROLES)})
    assert r.status_code == 201, r.text
    assert r.json()["models"] == ["echo"] and r.json()["expires_at"] is not None
    error = assert_error(httpx.post(url, headers=auth, json={"roles": ["app"], "models": ["echo", "gpt-4o-mini"]}),
                         403, "key_exceeds_creator")
    assert error["param"] == "models" and "gpt-4o-mini" in error["message"]
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    error = assert_error(httpx.post(url, headers=auth, json={"roles": ["app"], "expires_at": later}),
                         403, "key_exceeds_creator")
    assert error["param"] == "expires_at"
    # what the request leaves out is inherited from the creator
    r = httpx.post(url, headers=auth, json={"roles": ["admin", "app"]})
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["models"] == ["echo"] and card["expires_at"] is not None
    assert datetime.fromisoformat(card["expires_at"]) < datetime.now(UTC) + timedelta(minutes=61)
    minted = {"authorization": f"Bearer {card['key']}"}
    other = httpx.post(gw.base_url + "/v1/chat/completions", headers=minted,
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert_error(other, 403, "model_not_allowed")
    # and so on down the line: the minted key's own keys are bounded the same way
    r = httpx.post(url, headers=minted, json={"roles": ["app"], "models": ["echo"]})
    assert r.status_code == 201 and r.json()["expires_at"] == card["expires_at"]
    # within its limits a creator chooses: an earlier expiry, a role its admin role covers
    sooner = datetime.now(UTC) + timedelta(minutes=5)
    r = httpx.post(url, headers=auth, json={"roles": ["security"], "expires_at": sooner.isoformat()})
    assert r.status_code == 201 and r.json()["models"] == ["echo"]
    assert datetime.fromisoformat(r.json()["expires_at"]) == sooner


def test_unrestricted_admin_may_still_mint_unrestricted_keys(gw):
    r = httpx.post(gw.base_url + "/v1/bulkhead/admin/keys", headers=h(gw, "acme_admin"),
                   json={"roles": ["app"], "name": "ci"})
    assert r.status_code == 201 and r.json()["models"] is None and r.json()["expires_at"] is None
