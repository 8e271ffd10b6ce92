"""A database outage with unauthenticated traffic: requests with made-up keys may take only a small
share of the audit spool, and are counted past it, so they cannot fill it and stop every tenant's
traffic (`/readyz` 503, tenants 503 `audit_unavailable`). When the database is back, every one of
them is on record: individually, or in the one aggregate event."""

from __future__ import annotations

import asyncio
import json
import select as io_select
import socket
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

from gateway.db import create_engine
from gateway.models import AuditEvent
from tests.conftest import app_role_url, e2e_policy, start_gateway

FAST = "\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n"
FLOOD = 120


class CuttableProxy:
    """127.0.0.1:<port> -> target, both directions at once (the gateway's database connections go
    through it); `up = False` drops every connection and refuses new ones until it is True again."""

    def __init__(self, host: str, port: int) -> None:
        self.target, self.up = (host, port), True
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if not self.up:
                conn.close()
                continue
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            conn.close()
            return
        try:
            while self.up:
                for src in io_select.select([conn, upstream], [], [], 0.2)[0]:
                    data = src.recv(65536)
                    if not data:
                        return
                    (upstream if src is conn else conn).sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            upstream.close()

    def close(self) -> None:
        self._sock.close()


def chat(gw, key: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})


def accounted_in_spool(data: Path) -> int:
    """Unauthenticated requests the gateway has put on disk so far: spooled one by one, or counted."""
    spool, counted = data / "audit-spool.jsonl", data / "audit-spool.jsonl.unauthenticated"
    lines = spool.read_bytes().split(b"\n")[:-1] if spool.exists() else []  # the last may be half-written
    rows = [json.loads(line) for line in lines]
    kept = sum(1 for r in rows if r["tenant_id"] is None and r["method"] != "EVENT")
    return kept + (json.loads(counted.read_bytes())["count"] if counted.exists() else 0)


async def recorded(owner_url: str) -> list:
    engine = create_engine(owner_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(AuditEvent.request_id, AuditEvent.tenant_id, AuditEvent.method,
                                              AuditEvent.kind, AuditEvent.status, AuditEvent.detail))).all()
    finally:
        await engine.dispose()


def test_unauthenticated_requests_cannot_fill_the_spool(pg_database_factory, standin, tmp_path):
    owner = pg_database_factory()
    url = make_url(owner)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)  # the gateway's way to its database
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    gw = start_gateway(tmp_path, owner, standin, redis=False, policy=e2e_policy(standin, FAST),
                       extra_env={"DATABASE_URL": app_role_url(through_proxy), "BULKHEAD_POLICY_WATCH_SECONDS": "0",
                                  "BULKHEAD_AUDIT_SPOOL_MAX_BYTES": "40000"})
    try:
        gw.cli("tenants", "create", "acme")
        key = gw.new_key("acme", "app")
        served = [chat(gw, key)]  # its key is now cached for the outage
        assert served[0].status_code == 200, served[0].text

        proxy.up = False
        flood = [chat(gw, f"bh-made-up-{i:04d}").status_code for i in range(FLOOD)]
        assert set(flood) <= {401, 503}, set(flood)
        deadline = time.monotonic() + 60
        while True:  # until the writer has spooled or counted all of them, or refuses traffic
            ready = httpx.get(gw.base_url + "/readyz", timeout=10)
            if accounted_in_spool(tmp_path / "data") >= FLOOD or ready.json()["checks"].get("audit", "ok") != "ok":
                break
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        assert ready.status_code == 200 and ready.json()["checks"]["audit"] == "ok", ready.text
        assert (tmp_path / "data" / "audit-spool.jsonl").stat().st_size <= 40000
        for _ in range(5):  # tenants are still served, and still recorded
            served.append(chat(gw, key))
            assert served[-1].status_code == 200, served[-1].text

        proxy.up = True
        deadline = time.monotonic() + 60
        while True:
            rows = asyncio.run(recorded(owner))
            summaries = [r for r in rows if r.kind == "audit.unauthenticated_overflow"]
            ids = {r.request_id for r in rows}
            if summaries and all(r.headers["x-bulkhead-request-id"] in ids for r in served):
                break
            assert time.monotonic() < deadline, "the spool was never replayed"
            time.sleep(0.3)
        [summary] = summaries
        one_by_one = [r for r in rows if r.tenant_id is None and r.method != "EVENT"]
        assert one_by_one and summary.detail["requests"] > 0
        assert len(one_by_one) + summary.detail["requests"] == FLOOD  # every request accounted for, once
        assert sum(summary.detail["by_code"].values()) == summary.detail["requests"]
        assert summary.detail["first"] <= summary.detail["last"]
        assert {code.split()[0] for code in summary.detail["by_code"]} <= {"401", "503"}
        assert not (tmp_path / "data" / "audit-spool.jsonl.unauthenticated").exists()
    finally:
        code = gw.stop()
        proxy.close()
    assert code == 0, gw.log.read_text()[-3000:]
