"""One gateway process for the hardening suite (SQLite audit, real Redis), with the e2e policy plus
backends that point at misbehaving upstreams, and two tenant overlays: `fallback` (an alias over a
broken cheap backend, a working dearer one and a broken internal one) and `moe` (an in-process
local MoE backend whose checkpoint is corrupt, behind a breaker that opens after two failures)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ROOT, free_port, start_gateway
from tests.hardening.faults import Canary, FaultServer

FAULT_MODELS = ["stall-after-first", "drip", "hold", "break-mid-event", "garbage-event", "error-event", "no-done",
                "empty-stream", "drop", "retry-after-nan", "retry-after-date", "json-array", "html-502"]


def hardening_policy(standin_url: str, fault_url: str) -> str:
    template = (ROOT / "tests" / "policies" / "e2e.yaml").read_text()
    text = template.replace("{standin}", standin_url).replace("{closed}", f"http://127.0.0.1:{free_port()}/v1")
    text = text.rstrip("\n") + "\n"
    for model in FAULT_MODELS:
        retries = 1 if model == "drop" else 0
        text += (f"  - {{name: {model}, adapter: openai, model: {model}, api_base: '{fault_url}', timeout_s: 2, "
                 f"max_retries: {retries}}}\n")
    # The fault tests call the same broken backends more than once: their breakers stay closed.
    return text + "breaker: {failure_threshold: 1000}\n"


FALLBACK_OVERLAY = """\
access: {{models: [fb-broken, fb-ok, fb-internal]}}
backends:
  - {{name: fb-broken, adapter: openai, model: drop, api_base: '{faults}', trust: external, quality: 3,
     max_retries: 0, price: {{input_per_mtok: 0.1, output_per_mtok: 0.1}}}}
  - {{name: fb-ok, adapter: openai, model: echo, api_base: '{standin}', trust: external, quality: 3,
     price: {{input_per_mtok: 5, output_per_mtok: 5}}}}
  - {{name: fb-internal, adapter: openai, model: drop, api_base: '{faults}', trust: internal, quality: 3,
     max_retries: 0, price: {{input_per_mtok: 9, output_per_mtok: 9}}}}
"""

MOE_OVERLAY = """\
backends:
  - {{name: local-moe, adapter: local_moe, model: demo-moe, model_dir: '{model_dir}', trust: internal, quality: 3}}
breaker: {{failure_threshold: 2, open_seconds: 600}}
"""


@pytest.fixture(scope="package")
def faults():
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def canary():
    c = Canary()
    yield c
    c.close()


@pytest.fixture(scope="package")
def hgw(standin, faults, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    tenants = tmp / "policies" / "tenants"
    tenants.mkdir(parents=True)
    broken = tmp / "broken-moe"
    broken.mkdir()
    (broken / "config.json").write_text("{ this checkpoint is corrupt")
    (tenants / "fallback.yaml").write_text(FALLBACK_OVERLAY.format(faults=faults.base_url, standin=standin.base_url))
    (tenants / "moe.yaml").write_text(MOE_OVERLAY.format(model_dir=broken))
    gw = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'h.db'}", standin,
                       policy=hardening_policy(standin.base_url, faults.base_url))
    for tenant in ("acme", "globex", "fallback", "moe"):
        gw.cli("tenants", "create", tenant)
    gw.keys.update(app=gw.new_key("acme", "app"), globex=gw.new_key("globex", "app"),
                   fallback=gw.new_key("fallback", "app"), moe=gw.new_key("moe", "app"))
    yield gw
    code = gw.stop()
    assert code == 0, gw.log.read_text()[-4000:]


def auth(gw, key: str = "app") -> dict[str, str]:
    return {"authorization": f"Bearer {gw.keys[key]}"}


def chat(gw, body: dict, key: str = "app", **kw) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", headers=auth(gw, key), json=body, timeout=30, **kw)


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    """The shape every refusal has: the status asked for, never a 5xx where the client was at fault,
    `{"error": {message, type, code, param}}`, no traceback."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code", "param"} and err["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err
