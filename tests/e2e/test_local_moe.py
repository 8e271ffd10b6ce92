"""The self-hosted MoE backend in-process behind the gateway: OpenAI-shaped answers (streaming
too), high-risk traffic routed to it, its experts visible in the audit, metrics and API."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import openai
import pytest
from sqlalchemy import select

from gateway.db import create_engine
from gateway.models import AuditEvent
from tests.conftest import ROOT, start_gateway


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("moe")
    model = tmp / "demo-moe"
    out = subprocess.run([sys.executable, "-m", "local_moe.cli", "train-demo", "--out", str(model), "--steps", "3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    gateway = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'm.db'}", standin, redis=False,
                            extra_env={"BULKHEAD_PLATFORM_TENANT": "t"})  # reloads every tenant
    (tmp / "policies" / "default.yaml").write_text(f"""\
backends:
  - {{name: local-moe, adapter: local_moe, model: demo-moe, model_dir: "{model}", trust: internal, quality: 3,
     options: {{max_batch: 4, max_seq: 512}}}}
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin.base_url}", trust: external, quality: 3}}
moe: {{min_tokens: 1}}
""")
    gateway.cli("tenants", "create", "t")
    gateway.keys.update(admin=gateway.new_key("t", "admin"), app=gateway.new_key("t", "app"),
                        security=gateway.new_key("t", "security"))
    r = httpx.post(gateway.base_url + "/v1/bulkhead/admin/policies/reload",
                   headers={"authorization": f"Bearer {gateway.keys['admin']}"})
    assert r.status_code == 200, r.text
    yield gateway
    assert gateway.stop() == 0


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=gw.keys["app"], max_retries=0, timeout=120)


def test_chat_and_stream_from_the_local_model(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="local-moe", messages=[{"role": "user", "content": "What is a mixture of experts?"}],
        max_tokens=8, temperature=0)
    reply = raw.parse()
    assert raw.headers["x-bulkhead-route"] == "local-moe"
    assert isinstance(reply.choices[0].message.content, str) and reply.usage.completion_tokens > 0
    chunks = list(client(gw).chat.completions.create(
        model="local-moe", messages=[{"role": "user", "content": "Hello"}], max_tokens=6, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all("bulkhead_experts" not in c.model_dump() for c in chunks)


def test_high_risk_prompt_is_served_by_the_local_model(gw, standin):
    before = len(standin.requests)
    raw = client(gw).chat.completions.with_raw_response.create(
        model="bulkhead/auto", max_tokens=4,
        messages=[{"role": "user", "content": "My SSN is 536-80-4398; summarise my tax position."}])
    assert raw.headers["x-bulkhead-route"] == "local-moe"
    assert len(standin.requests) == before


async def test_experts_are_visible(gw):
    r = httpx.get(gw.base_url + "/v1/bulkhead/moe/experts", headers={"authorization": f"Bearer {gw.keys['security']}"})
    assert r.status_code == 200
    stats = r.json()["backends"]["local-moe"]
    assert stats["loaded"] and stats["tokens"] > 0 and stats["layers"]
    assert {"cv", "max_vio", "entropy", "dead"} <= set(stats["layers"][0])
    assert "collapse" in stats
    denied = httpx.get(gw.base_url + "/v1/bulkhead/moe/experts", headers={"authorization": f"Bearer {gw.keys['app']}"})
    assert denied.status_code == 403
    assert "bulkhead_moe_expert_load_cv" in httpx.get(gw.base_url + "/metrics").text
    engine = create_engine(gw.database_url)
    try:
        for _ in range(50):
            async with engine.connect() as conn:
                rows = (await conn.execute(select(AuditEvent.detail).where(AuditEvent.backend == "local-moe"))
                        ).scalars().all()
            if len(rows) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert sum(1 for d in rows if d and "experts" in d and "mean_cv" in d["experts"]) >= 2


async def _audit_row(gw, request_id: str):
    engine = create_engine(gw.database_url)
    try:
        for _ in range(100):
            async with engine.connect() as conn:
                row = (await conn.execute(select(AuditEvent.status, AuditEvent.error_code, AuditEvent.stream)
                                          .where(AuditEvent.request_id == request_id))).first()
            if row is not None:
                return row
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise AssertionError(f"no audit row for {request_id}")


async def test_a_fully_read_sdk_stream_is_audited_as_served(gw):
    """The official SDK closes its connection as soon as it reads `[DONE]`: a stream read to the end
    is a served one, not `client_disconnected`. (Until the journey's one answer path, the output scan
    ran after `[DONE]`, so that close cancelled it and the audit said `client_disconnected`.)"""
    for _ in range(3):  # a race: each stream is another chance for work after [DONE] to be cut off
        with client(gw).chat.completions.with_streaming_response.create(
                model="local-moe", messages=[{"role": "user", "content": "Hello"}], max_tokens=6,
                stream=True) as raw:
            request_id = raw.headers["x-bulkhead-request-id"]
            chunks = list(raw.parse())
        assert chunks and chunks[-1].choices[0].finish_reason is not None
        status, error_code, stream = await _audit_row(gw, request_id)
        assert (status, error_code, stream) == (200, None, True)
