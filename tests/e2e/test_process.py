"""The gateway process as operators see it: the other ASGI server, tracing to the console
exporter, and a SIGTERM that drains the audit queue before exit 0."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from gateway.db import create_engine
from gateway.models import AuditEvent
from tests.conftest import start_gateway


async def _audit_count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(AuditEvent.__table__))).scalar_one()
    finally:
        await engine.dispose()


def test_granian_tracing_and_graceful_shutdown(standin, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    gw = start_gateway(tmp_path, url, standin, server="granian", redis=False,
                       extra_env={"OTEL_TRACES_EXPORTER": "console", "BULKHEAD_AUDIT_FLUSH_SECONDS": "30"})
    try:
        assert "models warm in" in gw.log.read_text()  # ready only once the models are loaded
        gw.cli("tenants", "create", "ops")
        key = gw.new_key("ops", "app")
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(5):
            r = httpx.post(gw.base_url + "/v1/chat/completions", headers=headers, json=body)
            assert r.status_code == 200 and r.headers["server"] == "granian"
        assert httpx.get(gw.base_url + "/readyz").json()["checks"] == {"database": "ok"}
    finally:
        code = gw.stop()
    log = gw.log.read_text()
    assert code == 0, log[-3000:]
    # a 30 s flush interval means the rows were still queued at SIGTERM: shutdown wrote them
    assert asyncio.run(_audit_count(url)) == 5
    for span in ('"name": "request"', '"name": "authenticate"', '"name": "decide"', '"name": "call"'):
        assert span in log
