"""Issue 24, items 1 and 9: content the PII stage cannot read. Inline images, audio and files keep
a request inside the trust boundary by default (`pii.media.inline`); image links go only where the
provider fetches them, never to a backend for which litellm would download them from the gateway's
host (`pii.media.links`)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import start_gateway

POLICY = """
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin}", trust: external, quality: 3}}
  - {{name: local, adapter: openai, model: echo, api_base: "{standin}", trust: internal, quality: 3,
     price: {{input_per_mtok: 50.0, output_per_mtok: 50.0}}}}
  - {{name: claude, adapter: litellm, model: anthropic/claude-sonnet-4-5, api_base: "{standin}",
     api_key_env: STANDIN_API_KEY, trust: external, quality: 3}}
risk: {{embeddings: {{enabled: false}}}}
"""
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
LINK = {"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}}


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("media")
    gateway = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'm.db'}", standin, redis=False,
                            policy=POLICY.format(standin=standin.base_url))
    tenants = tmp / "policies" / "tenants"
    tenants.mkdir()
    (tenants / "open.yaml").write_text("pii: {media: {inline: allow, links: refuse}}\n")
    (tenants / "closed.yaml").write_text("pii: {media: {inline: refuse}}\n")
    for tenant in ("acme", "open", "closed"):
        gateway.cli("tenants", "create", tenant)
        gateway.keys[tenant] = gateway.new_key(tenant, "app")
    yield gateway
    assert gateway.stop() == 0


def chat(gw, model: str, part: dict, tenant: str = "acme") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                                       part]}]}
    return httpx.post(gw.base_url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"authorization": f"Bearer {gw.keys[tenant]}"})


def test_inline_media_stay_inside_by_default(gw, standin):
    before = len(standin.requests)
    r = chat(gw, "echo", IMAGE)
    assert r.status_code == 403 and r.json()["error"]["code"] == "inline_media_not_allowed", r.text
    assert len(standin.requests) == before
    r = chat(gw, "bulkhead/auto", IMAGE)
    assert r.status_code == 200 and r.headers["x-bulkhead-route"] == "local", r.text


def test_inline_media_policy_choices(gw):
    assert chat(gw, "echo", IMAGE, "open").status_code == 200
    r = chat(gw, "echo", IMAGE, "closed")
    assert r.status_code == 400 and r.json()["error"]["code"] == "inline_media_not_allowed"


def test_image_links_go_only_where_the_provider_fetches_them(gw, standin):
    assert chat(gw, "echo", LINK).status_code == 200
    before = len(standin.requests)
    r = chat(gw, "claude", LINK)
    assert r.status_code == 400 and r.json()["error"]["code"] == "image_links_not_allowed", r.text
    assert len(standin.requests) == before
    r = chat(gw, "echo", LINK, "open")
    assert r.status_code == 400 and r.json()["error"]["code"] == "image_links_not_allowed"
