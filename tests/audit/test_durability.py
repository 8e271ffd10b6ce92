"""Nothing lost: the spool takes what the database cannot, replays it exactly once and in order;
strict mode answers only what is on record; and a real Postgres killed and restarted under load
ends with events = requests, no duplicates, and a chain that verifies."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.audit.spool import Spool
from gateway.audit.writer import AuditWriter, system_event
from gateway.db import create_engine
from gateway.migrate import upgrade
from gateway.models import AuditEvent
from tests.conftest import app_role_url, free_port, start_gateway

DEAD_DB = "postgresql+asyncpg://postgres@127.0.0.1:9/none"  # nothing listens on port 9


def rows(n: int, tenant: str | None = None) -> list[dict]:
    return [system_event("request", {"i": i}, tenant_id=tenant) | {"request_id": f"req_{uuid.uuid4().hex}"}
            for i in range(n)]


async def count(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(AuditEvent))).scalar()
        distinct = (await conn.execute(select(func.count(AuditEvent.request_id.distinct())))).scalar()
    await engine.dispose()
    return total, distinct


@pytest.fixture(params=["postgres", "sqlite"])
def replay_db(request, pg_database_factory, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
        upgrade(url)
        return url, url
    owner = pg_database_factory()
    upgrade(owner)
    return owner, app_role_url(owner)


async def test_spool_replays_in_order_exactly_once(tmp_path, replay_db):
    owner_url, url = replay_db
    spool = Spool(tmp_path / "spool.jsonl", 1 << 20)
    dead = create_engine(DEAD_DB)
    writer = AuditWriter(dead, spool=spool)
    batch = rows(30)
    for row in batch:
        writer.submit(row)
    assert not await writer.flush()
    assert spool.pending() and writer.pending and writer.accepting
    await dead.dispose()
    # a crash after the first replayed batch committed but before its offset was saved
    live = create_engine(url)
    first = AuditWriter(live, batch_max=10, spool=Spool(tmp_path / "spool.jsonl", 1 << 20))
    replayed, _ = first._spool.read(10)
    await first._insert(replayed)
    again = AuditWriter(live, batch_max=10, spool=Spool(tmp_path / "spool.jsonl", 1 << 20))
    assert await again.flush()
    assert not again._spool.pending() and (tmp_path / "spool.jsonl").stat().st_size == 0
    await live.dispose()
    owner = create_engine(owner_url)
    async with owner.connect() as conn:
        stored = list((await conn.execute(select(AuditEvent.request_id).order_by(AuditEvent.seq))).scalars())
    await owner.dispose()
    assert stored == [r["request_id"] for r in batch]  # once each, in the order they were submitted


async def test_a_full_spool_stops_traffic_and_a_torn_line_is_dropped(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl", 2000)
    dead = create_engine(DEAD_DB)
    writer = AuditWriter(dead, spool=spool)
    for row in rows(20):
        writer.submit(row)
    assert not await writer.flush()
    assert not writer.accepting and writer.pending  # nothing dropped: still queued in memory
    await dead.dispose()
    with open(tmp_path / "spool2.jsonl", "wb") as fh:
        fh.write(b'{"a": 1}\n{"torn')
    assert (tmp_path / "spool2.jsonl").read_bytes() != b'{"a": 1}\n'
    Spool(tmp_path / "spool2.jsonl", 1 << 20)
    assert (tmp_path / "spool2.jsonl").read_bytes() == b'{"a": 1}\n'


async def test_strict_waits_for_the_commit_and_answers_503_when_it_cannot(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    await asyncio.to_thread(upgrade, url)
    live = create_engine(url)
    writer = AuditWriter(live, spool=Spool(tmp_path / "a.jsonl", 1 << 20))
    writer.start()
    row = rows(1)[0]
    assert await writer.submit_durable(row, 5)
    assert (await count(url))[0] == 1  # committed before submit_durable returned
    await writer.close()
    await live.dispose()
    dead = create_engine(DEAD_DB)
    writer = AuditWriter(dead, spool=Spool(tmp_path / "b.jsonl", 1 << 20))
    writer.start()
    row = rows(1)[0]
    assert not await writer.submit_durable(row, 0.5)
    assert (row["status"], row["error_code"]) == (503, "audit_unavailable")  # recorded as what the client saw
    await writer.close(timeout=0.5)
    await dead.dispose()
    assert b"audit_unavailable" in (tmp_path / "b.jsonl").read_bytes()


# -- a real Postgres, killed and restarted under load ------------------------------------------


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def _as_postgres(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, text=True,
                          timeout=60, **kw)


class PrivatePostgres:
    """A throwaway Postgres cluster of our own, so the test may kill it without touching the shared one."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bh-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                     "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-l", str(self.dir / "log"),
                     "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def kill(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")

    def destroy(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    if PG_BIN is None or shutil.which("runuser") is None:
        pytest.skip("needs local PostgreSQL server binaries (initdb, pg_ctl) to run a cluster it may kill")
    pg = PrivatePostgres()
    yield pg
    pg.destroy()


def test_postgres_killed_and_restarted_under_load(private_pg, standin, tmp_path):
    gw = start_gateway(tmp_path, private_pg.url, standin, redis=False,
                       extra_env={"BULKHEAD_AUDIT_CHECKPOINT_SECONDS": "0.5"})
    try:
        (tmp_path / "policies" / "tenants").mkdir(exist_ok=True)
        (tmp_path / "policies" / "tenants" / "careful.yaml").write_text("audit: {mode: strict, strict_timeout_s: 1}\n")
        for name in ("relaxed", "careful"):
            gw.cli("tenants", "create", name)
            gw.keys[name] = gw.new_key(name, "app")
        deadline = time.monotonic() + 30
        while not asyncio.run(_overlay_applied(private_pg.url, "careful")):  # the policy watcher's reload
            assert time.monotonic() < deadline, "the careful overlay was never applied"
            time.sleep(0.2)
        seen: dict[str, list[tuple[str, int, str]]] = {"relaxed": [], "careful": []}
        stop = threading.Event()

        def load(tenant: str) -> None:
            with httpx.Client(base_url=gw.base_url, timeout=30) as client:
                while not stop.is_set():
                    r = client.post("/v1/chat/completions", headers={"authorization": f"Bearer {gw.keys[tenant]}"},
                                    json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
                    code = r.json().get("error", {}).get("code", "") if r.status_code >= 400 else ""
                    seen[tenant].append((r.headers["x-bulkhead-request-id"], r.status_code, code))

        for tenant in seen:  # the first request waits for the models to load; not part of the outage
            r = httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {gw.keys[tenant]}"},
                           json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}, timeout=120)
            seen[tenant].append((r.headers["x-bulkhead-request-id"], r.status_code, ""))
        threads = [threading.Thread(target=load, args=(t,)) for t in ("relaxed", "relaxed", "careful")]
        for t in threads:
            t.start()
        time.sleep(1.5)
        private_pg.kill()
        time.sleep(2.5)
        private_pg.start()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(60)
        sent = {t: len(v) for t, v in seen.items()}
        assert sent["relaxed"] > 20 and sent["careful"] > 5, sent
        # available: served through the outage (authentication from its stale-if-error cache)
        assert {s for _, s, _ in seen["relaxed"]} == {200}, {s for _, s, _ in seen["relaxed"]}
        # strict: only what was on record was answered; the rest got 503 audit_unavailable
        assert {(s, c) for _, s, c in seen["careful"]} <= {(200, ""), (503, "audit_unavailable")}
        assert (503, "audit_unavailable") in {(s, c) for _, s, c in seen["careful"]}

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            by_id = asyncio.run(_statuses(private_pg.url))
            if all(rid in by_id for v in seen.values() for rid, _, _ in v):
                break
            time.sleep(0.5)
        total, distinct = asyncio.run(count(private_pg.url))
        assert total == distinct  # no duplicates
        for tenant, responses in seen.items():
            for rid, status, _ in responses:
                assert by_id.get(rid) == status, (tenant, rid, status, by_id.get(rid))  # on record, as answered
        assert gw.stop() == 0
        out = subprocess.run([*_bulkhead(), "audit", "verify"], env=gw.env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "BROKEN" not in out.stdout and "intact" in out.stdout
    finally:
        gw.stop()


def _bulkhead() -> list[str]:
    import sys

    return [sys.executable, "-m", "gateway.cli"]


async def _overlay_applied(url: str, tenant: str) -> bool:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            applied = select(AuditEvent.detail).where(AuditEvent.kind == "policy.applied")
            details = (await conn.execute(applied)).scalars()
            return any(tenant in ((d or {}).get("changes") or {}) for d in details)
    finally:
        await engine.dispose()


async def _statuses(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return dict((await conn.execute(select(AuditEvent.request_id, AuditEvent.status))).all())
    except (OSError, Exception):
        return {}
    finally:
        await engine.dispose()
