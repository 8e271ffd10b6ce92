"""Redis down or hanging, through a gateway process whose REDIS_URL goes through a loopback proxy
to the real Redis that the test can cut: each tenant's policy chooses. `limits.on_redis_error:
closed` answers 503 `limits_unavailable` to requests a limit applies to; `open` enforces the same
limits in process (logged once per outage); a tenant without limits is served either way (breakers
and cache fall back to the process). When Redis returns, limits are shared again."""

from __future__ import annotations

import time

import httpx
import pytest

from tests import conftest
from tests.conftest import REDIS_URL, start_gateway
from tests.hardening.faults import TcpProxy

POLICY = """\
pii: {{enabled: false}}
risk: {{embeddings: {{enabled: false}}}}
cache: {{enabled: true}}
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin}"}}
"""
OPEN = "limits: {rpm_per_key: 3, on_redis_error: open}\n"
CLOSED = "limits: {rpm_per_key: 1000, on_redis_error: closed}\nbudgets: {tenant_usd: 100}\n"


@pytest.fixture(scope="module")
def proxy():
    from redis.connection import parse_url

    target = parse_url(REDIS_URL)
    p = TcpProxy(target.get("host", "127.0.0.1"), int(target.get("port", 6379)), mode="drop")
    yield p
    p.close()


def call(gw, key: str, text: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "echo", "messages": [{"role": "user", "content": text}]}, timeout=60)


def test_redis_down_then_hanging_then_back(standin, proxy, tmp_path, monkeypatch):
    tenants = tmp_path / "policies" / "tenants"
    tenants.mkdir(parents=True)
    (tenants / "open.yaml").write_text(OPEN)
    (tenants / "closed.yaml").write_text(CLOSED)
    monkeypatch.setattr(conftest, "REDIS_URL", f"redis://127.0.0.1:{proxy.port}/0")  # the gateway's, via the proxy
    gw = start_gateway(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", standin, redis=True,
                       policy=POLICY.format(standin=standin.base_url))
    try:
        for tenant in ("open", "closed", "free"):
            gw.cli("tenants", "create", tenant)
        keys = {t: gw.new_key(t, "app") for t in ("open", "closed", "free")}

        # Down from the start: ready all the same (a policy fails open), but says so.
        ready = httpx.get(gw.base_url + "/readyz").json()
        assert ready["status"] == "ready" and ready["checks"]["redis"].startswith("degraded")

        r = call(gw, keys["closed"], "closed tenant")
        assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable"
        assert int(r.headers["retry-after"]) >= 1
        statuses = [call(gw, keys["open"], f"open tenant {i}").status_code for i in range(4)]
        assert statuses == [200, 200, 200, 429]  # its rpm of 3, counted in process
        for _ in range(2):  # no limits: served (breakers and cache in process)
            assert call(gw, keys["free"], "the same text twice").status_code == 200
        assert gw.log.read_text().count("Redis unreachable") == 1  # logged once, not per request

        # Hanging (accepts, never answers): refused or served the same way, after the client's
        # 2 s socket timeout at most once per retry window, not once per request.
        proxy.set("blackhole")
        deadline = time.monotonic() + 30
        while not proxy.accepted.get("blackhole"):  # the gateway leaves Redis alone for 5 s after a failure
            r = call(gw, keys["closed"], "closed tenant, redis hanging")
            assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable"
            assert time.monotonic() < deadline, "the gateway never tried Redis again"
            time.sleep(0.2)
        # it did try the hanging Redis and gave up on it: refused within the client's socket timeout
        r = call(gw, keys["closed"], "closed tenant, redis hanging")
        assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable"
        assert call(gw, keys["free"], "free tenant, redis hanging").status_code == 200

        # Back: shared limits again.
        proxy.set("pass")
        deadline = time.monotonic() + 30  # until the next retry window ends and limits are shared again
        while (r := call(gw, keys["closed"], "closed tenant, redis back")).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.5)
        assert "Redis reachable again" in gw.log.read_text()
        assert httpx.get(gw.base_url + "/readyz").json()["checks"]["redis"] == "ok"
    finally:
        code = gw.stop()
    assert code == 0, gw.log.read_text()[-3000:]
