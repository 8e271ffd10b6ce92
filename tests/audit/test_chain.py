"""The hash chain: written gap-free by concurrent writers, append-only for every role, every kind of
damage named at the right sequence number, on the database and offline, and pruning that keeps
verification passing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import insert, select, text

from gateway.audit.chain import row_hash
from gateway.audit.checkpoints import CheckpointStore
from gateway.audit.export import export_line, export_rows, verify_export
from gateway.audit.retention import prune_chain
from gateway.audit.verify import db_rows, verify_database
from gateway.audit.writer import AuditWriter, system_event
from gateway.db import create_engine
from gateway.migrate import upgrade
from gateway.models import AuditEvent, Tenant, utcnow
from tests.conftest import app_role_url


def event(tenant: str | None, **extra) -> dict:
    row = system_event("request", {"n": uuid.uuid4().hex[:6]}, tenant_id=tenant)
    row.update(method="POST", endpoint="/v1/chat/completions", request_id="req_" + uuid.uuid4().hex,
               stages={"call": 1.25}, latency_ms=3.5, cost_usd=0.000123)
    row.update(extra)
    return row


@pytest.fixture(params=["postgres", "sqlite"])
def db_urls(request, pg_database_factory, tmp_path):
    if request.param == "postgres":
        owner = pg_database_factory()
        app = app_role_url(owner)
    else:
        owner = app = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    upgrade(owner)
    return request.param, owner, app


@pytest.fixture
async def db(db_urls):
    kind, owner, app = db_urls
    engine = create_engine(owner)
    async with engine.begin() as conn:
        await conn.execute(insert(Tenant.__table__), [{"id": t, "name": t, "created_at": utcnow()}
                                                      for t in ("ten_a", "ten_b")])
    yield {"owner": engine, "app_url": app, "kind": kind}
    await engine.dispose()


@pytest.fixture
def store(tmp_path) -> CheckpointStore:
    return CheckpointStore.for_signing(tmp_path / "cps", tmp_path / "key.pem")


async def write(engine_url: str, rows: list[dict], writers: int = 1) -> None:
    """Through real AuditWriters (several at once: replicas racing for the same chain head)."""
    engines = [create_engine(engine_url) for _ in range(writers)]
    try:
        ws = [AuditWriter(e, batch_max=7) for e in engines]
        for i, row in enumerate(rows):
            ws[i % writers].submit(row)
        assert all(await asyncio.gather(*(w.flush() for w in ws)))
    finally:
        for e in engines:
            await e.dispose()


async def seqs(engine, chain: str) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(AuditEvent.seq).where(AuditEvent.chain == chain)
                                        .order_by(AuditEvent.seq))).scalars())


async def test_concurrent_writers_build_one_gap_free_chain_per_tenant(db, store):
    rows = [event(t) for t in ("ten_a", "ten_b", None) for _ in range(40)]
    await write(db["app_url"], rows, writers=4 if db["kind"] == "postgres" else 1)
    for chain in ("ten_a", "ten_b", ""):
        assert await seqs(db["owner"], chain) == list(range(1, 41))
        store.append(chain, 40, (await _head(db["owner"], chain)))
        report = await verify_database(db["owner"], chain, store)
        assert report.ok and report.events == 40 and report.checkpoint_seq == 40, report


async def _head(engine, chain):
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT hash FROM audit_chain_heads WHERE chain = :c"), {"c": chain})).scalar()


async def test_the_database_refuses_a_successor_that_is_not_the_heads(db):
    await write(db["app_url"], [event("ten_a") for _ in range(3)])
    forged = {**event("ten_a"), "chain": "ten_a", "seq": 2, "prev_hash": "0" * 64, "hash": "1" * 64}
    with pytest.raises(Exception):  # noqa: B017 - the trigger's error differs per database
        async with db["owner"].begin() as conn:
            await conn.execute(insert(AuditEvent.__table__), [{k: v for k, v in forged.items()}])
    assert await seqs(db["owner"], "ten_a") == [1, 2, 3]


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET status = 999", "DELETE FROM audit_events",
                                       "TRUNCATE audit_events", "UPDATE hallucination_checks SET score = 1"])
async def test_append_only_for_the_app_role_and_the_owner(db, statement):
    check = {"kind": "grounding", "version": "1", "score": 0.4, "threshold": 0.5, "verdict": "unsupported",
             "action": "flag", "claims": [], "latency_ms": 3.0}
    if db["kind"] == "sqlite" and statement.startswith("TRUNCATE"):
        pytest.skip("SQLite has no TRUNCATE")
    await write(db["app_url"], [event("ten_a", checks=[check]) for _ in range(2)])
    engines = [db["owner"]]
    if db["kind"] == "postgres":
        engines.append(create_engine(db["app_url"]))
    for engine in engines:
        with pytest.raises(Exception) as err:
            async with engine.begin() as conn:
                if db["kind"] == "postgres":
                    await conn.execute(text("SELECT set_config('bulkhead.tenant_id', 'ten_a', true)"))
                await conn.execute(text(statement))
        assert "append-only" in str(err.value) or "permission denied" in str(err.value)
        if engine is not db["owner"]:
            assert "permission denied" in str(err.value)  # no privilege at all, before any trigger
            await engine.dispose()
        else:
            assert "append-only" in str(err.value)
    assert len(await seqs(db["owner"], "ten_a")) == 2


# -- tampering: the owner turns the guards off and edits history --------------------------------


async def _tamper(db, *statements: str, params: dict | None = None) -> None:
    async with db["owner"].begin() as conn:
        if db["kind"] == "postgres":
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            for t in ("audit_events_no_update", "audit_events_no_delete", "audit_events_chain"):
                await conn.execute(text(f"DROP TRIGGER IF EXISTS {t}"))
        for s in statements:
            await conn.execute(text(s), params or {})
        if db["kind"] == "postgres":
            await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


async def _row(db, seq: int) -> dict:
    async with db["owner"].connect() as conn:
        async for r in db_rows(conn, "ten_a", seq - 1, batch=1, raw_json=False):
            r.pop("_json_text")
            return r


async def _verify(db, store=None):
    return await verify_database(db["owner"], "ten_a", store)


async def test_edited(db):
    await write(db["app_url"], [event("ten_a") for _ in range(10)])
    await _tamper(db, "UPDATE audit_events SET status = 500 WHERE chain = 'ten_a' AND seq = 6")
    r = await _verify(db)
    assert (r.ok, r.damage, r.first_bad_seq) == (False, "edited", 6)


async def test_edited_with_its_hash_recomputed(db):
    await write(db["app_url"], [event("ten_a") for _ in range(10)])
    row = await _row(db, 4)
    row["status"] = 201
    await _tamper(db, "UPDATE audit_events SET status = 201, hash = :h WHERE chain = 'ten_a' AND seq = 4",
                  params={"h": row_hash(row)})
    r = await _verify(db)
    assert (r.damage, r.first_bad_seq) == ("edited", 4)


async def test_deleted(db):
    await write(db["app_url"], [event("ten_a") for _ in range(10)])
    await _tamper(db, "DELETE FROM audit_events WHERE chain = 'ten_a' AND seq IN (5, 6)")
    r = await _verify(db)
    assert (r.damage, r.first_bad_seq) == ("deleted", 5)


async def test_deleted_from_the_start(db):
    await write(db["app_url"], [event("ten_a") for _ in range(5)])
    await _tamper(db, "DELETE FROM audit_events WHERE chain = 'ten_a' AND seq = 1")
    r = await _verify(db)
    assert (r.damage, r.first_bad_seq) == ("deleted", 1)


async def test_inserted(db):
    if db["kind"] == "sqlite":
        pytest.skip("SQLite cannot drop a table constraint in place; the Postgres run covers insertion")
    await write(db["app_url"], [event("ten_a") for _ in range(6)])
    forged = {**(await _row(db, 3)), "request_id": "req_forged"}
    forged["hash"] = row_hash(forged)
    async with db["owner"].begin() as conn:
        for constraint in ("uq_audit_events_chain_seq", "uq_audit_events_chain_prev_hash"):
            await conn.execute(text(f"ALTER TABLE audit_events DROP CONSTRAINT {constraint}"))
    await _tamper(db)
    async with db["owner"].begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        await conn.execute(insert(AuditEvent.__table__), [forged])
    r = await _verify(db)
    assert (r.damage, r.first_bad_seq) == ("inserted", 3)


async def test_reordered(db):
    await write(db["app_url"], [event("ten_a") for _ in range(8)])
    if db["kind"] == "sqlite":
        stmts = ["UPDATE audit_events SET seq = -1 WHERE chain = 'ten_a' AND seq = 3",
                 "UPDATE audit_events SET seq = 3 WHERE chain = 'ten_a' AND seq = 4",
                 "UPDATE audit_events SET seq = 4 WHERE chain = 'ten_a' AND seq = -1"]
    else:
        stmts = ["UPDATE audit_events SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END "
                 "WHERE chain = 'ten_a' AND seq IN (3, 4)"]
        async with db["owner"].begin() as conn:
            await conn.execute(text("ALTER TABLE audit_events DROP CONSTRAINT uq_audit_events_chain_seq"))
    await _tamper(db, *stmts)
    r = await _verify(db)
    assert (r.damage, r.first_bad_seq) == ("reordered", 3)


async def test_truncated_and_rolled_back_are_caught_by_the_checkpoints(db, store):
    await write(db["app_url"], [event("ten_a") for _ in range(10)])
    store.append("ten_a", 10, await _head(db["owner"], "ten_a"))
    assert (await _verify(db, store)).ok
    await _tamper(db, "DELETE FROM audit_events WHERE chain = 'ten_a' AND seq > 7",
                  "UPDATE audit_chain_heads SET seq = 7, hash = (SELECT hash FROM audit_events "
                  "WHERE chain = 'ten_a' AND seq = 7) WHERE chain = 'ten_a'")
    r = await _verify(db, store)
    assert (r.damage, r.first_bad_seq) == ("truncated", 8)
    assert (await _verify(db)).ok  # without the checkpoints, a clean cut is invisible: that is their job
    # a restored backup that went on taking traffic: consistent chain, different history
    await write(db["app_url"], [event("ten_a") for _ in range(5)])
    r = await _verify(db, store)
    assert (r.damage, r.first_bad_seq) == ("rolled_back", 10)


async def test_damaged_checkpoints_are_reported(db, store, tmp_path):
    await write(db["app_url"], [event("ten_a") for _ in range(3)])
    for seq in (1, 2, 3):
        store.append("ten_a", seq, (await _row(db, seq))["hash"])
    lines = store.path("ten_a").read_bytes().splitlines()
    store.path("ten_a").write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")  # one deleted
    r = await _verify(db, store)
    assert r.damage == "checkpoints_invalid" and "does not follow" in r.message
    forged = orjson.loads(lines[0])
    forged["hash"] = "f" * 64
    store.path("ten_a").write_bytes(orjson.dumps(forged) + b"\n")
    assert "invalid signature" in (await _verify(db, store)).message
    other = CheckpointStore.for_signing(tmp_path / "elsewhere", tmp_path / "other.pem")
    other.append("ten_a", 3, (await _row(db, 3))["hash"])
    pinned = CheckpointStore(tmp_path / "elsewhere", store.public_key)  # the verifier pins the real key
    assert "invalid signature" in (await verify_database(db["owner"], "ten_a", pinned)).message


async def test_offline_verification_of_an_export(db, store, tmp_path):
    await write(db["app_url"], [event(t) for t in ("ten_a", "ten_b") for _ in range(5)])
    path = tmp_path / "export.jsonl"
    async with db["owner"].connect() as conn:
        with open(path, "wb") as fh:
            for chain in ("ten_a", "ten_b"):
                async for row in db_rows(conn, chain):
                    fh.write(export_line(row))
    for chain in ("ten_a", "ten_b"):
        store.append(chain, 5, await _head(db["owner"], chain))
    reports = verify_export(export_rows(path), store)
    assert [(r.chain, r.ok, r.events) for r in reports] == [("ten_a", True, 5), ("ten_b", True, 5)]
    lines = path.read_bytes().splitlines()
    edited = orjson.loads(lines[7])
    edited["tokens_out"] = 9999
    lines[7] = orjson.dumps(edited)
    path.write_bytes(b"\n".join(lines) + b"\n")
    reports = verify_export(export_rows(path), store)
    assert reports[0].ok and (reports[1].damage, reports[1].first_bad_seq) == ("edited", 3)


async def test_pruning_behind_a_checkpoint_keeps_verification_passing(db, store):
    old = utcnow() - timedelta(days=40)
    await write(db["app_url"], [event("ten_a", ts=old) for _ in range(6)] + [event("ten_a") for _ in range(4)])
    held = await prune_chain(db["owner"], "ten_a", retention_days=30, legal_hold=True, checkpoints=store)
    assert held.pruned == 0 and "legal hold" in held.reason
    early = await prune_chain(db["owner"], "ten_a", retention_days=30, legal_hold=False, checkpoints=store)
    assert early.pruned == 0 and "no signed checkpoint" in early.reason
    store.append("ten_a", 4, (await _row(db, 4))["hash"])
    store.append("ten_a", 8, (await _row(db, 8))["hash"])  # covers recent events: not usable for pruning
    result = await prune_chain(db["owner"], "ten_a", retention_days=30, legal_hold=False, checkpoints=store)
    assert (result.pruned, result.through_seq) == (4, 4)
    assert (await seqs(db["owner"], "ten_a"))[:2] == [5, 6]
    r = await _verify(db, store)
    assert r.ok and r.anchor_seq == 4 and r.events == 7, r  # 6 left + the prune's own event
    # a pruning anchor no checkpoint vouches for is itself damage
    async with db["owner"].begin() as conn:
        await conn.execute(text("UPDATE audit_chain_anchors SET seq = 5 WHERE chain = 'ten_a'"))
    assert not (await _verify(db, store)).ok
