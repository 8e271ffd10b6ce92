"""Tenant isolation by construction, on Postgres: the schema says so, the gateway's role cannot get
around it, and one pooled connection shared by interleaved tenants never leaks a row."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.audit.writer import append_events
from gateway.db import create_engine
from gateway.migrate import upgrade
from gateway.models import ApiKey, AuditEvent, DeskLogout, Tenant, utcnow
from gateway.tenancy import scope
from tests.conftest import app_role_url


@pytest.fixture(scope="module")
def owner_url(pg_database_factory):
    url = pg_database_factory()
    upgrade(url)
    return url


async def _seed(owner_url: str) -> dict[str, str]:
    engine = create_engine(owner_url)
    tenants = {name: "ten_" + uuid.uuid4().hex[:12] for name in ("a", "b")}
    async with engine.begin() as conn:
        for name, tid in tenants.items():
            await conn.execute(insert(Tenant.__table__), [{"id": tid, "name": f"{name}-{tid}", "created_at": utcnow()}])
            await conn.execute(insert(ApiKey.__table__), [{
                "id": f"key_{name}_{tid}", "tenant_id": tid, "key_hash": uuid.uuid4().hex, "prefix": "bh-x",
                "roles": ["app"], "created_at": utcnow()}])
    await engine.dispose()
    return tenants


def _event(tenant_id: str | None) -> dict:
    return {"request_id": "req_" + uuid.uuid4().hex, "key_id": None, "requested_model": None, "backend": None,
            "ts": utcnow(), "tenant_id": tenant_id, "method": "POST",
            "endpoint": "/v1/chat/completions", "status": 200, "stream": False, "tokens_in": 1, "tokens_out": 1,
            "cost_usd": 0, "latency_ms": 1.0, "stages": {}, "attempts": 1, "kind": "request"}


async def test_schema_every_tenant_table_has_forced_rls_and_tenant_scoped_constraints(owner_url):
    engine = create_engine(owner_url)
    async with engine.connect() as conn:
        tables = (await conn.execute(text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "AND EXISTS (SELECT 1 FROM information_schema.columns i WHERE i.table_name = c.relname "
            "AND i.column_name = 'tenant_id')"))).all()
        constraints = (await conn.execute(text(
            "SELECT tc.table_name, tc.constraint_name, tc.constraint_type, "
            "array_agg(kcu.column_name::text) AS cols FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name "
            "WHERE tc.table_schema = 'public' AND tc.constraint_type IN ('UNIQUE', 'FOREIGN KEY') "
            "GROUP BY tc.table_name, tc.constraint_name, tc.constraint_type"))).all()
        role = (await conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'bulkhead_app'"))).one()
        owners = (await conn.execute(text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"))).scalars().all()
    await engine.dispose()
    assert {t for t, *_ in tables} >= {"api_keys", "audit_events"}
    for name, enabled, forced in tables:
        assert enabled and forced, f"{name} lacks forced row-level security"
    for table, name, kind, cols in constraints:
        if table == "tenants":
            continue  # the tenant registry itself: its unique name is what tenant ids hang off
        # audit_events.chain is the tenant id ('' for unauthenticated rows), enforced by its trigger
        assert "tenant_id" in cols or "chain" in cols, f"{kind} {name} on {table} is not tenant-scoped"
    assert role == (False, False)
    assert "bulkhead_app" not in owners


async def test_gateway_role_sees_nothing_unscoped_and_only_its_tenant_scoped(owner_url):
    tenants = await _seed(owner_url)
    app = create_engine(app_role_url(owner_url))
    try:
        async with app.begin() as conn:
            for table in ("tenants", "api_keys", "audit_events"):
                assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
        async with app.begin() as conn:
            await append_events(conn, [_event(tenants["a"])])
            keys = (await conn.execute(select(ApiKey.tenant_id))).scalars().all()
            assert keys and set(keys) == {tenants["a"]}
            assert (await conn.execute(select(Tenant.id))).scalars().all() == [tenants["a"]]
        with pytest.raises((DBAPIError, ProgrammingError)):  # writing another tenant's row is refused
            async with app.begin() as conn:
                await scope(conn, tenants["a"])
                row = {**_event(tenants["b"]), "chain": tenants["b"], "seq": 1, "prev_hash": "0" * 64, "hash": "f" * 64}
                await conn.execute(insert(AuditEvent.__table__), [row])
        for statement in ("DELETE FROM audit_events", "ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY",
                          "SET row_security = off; SELECT count(*) FROM api_keys"):
            with pytest.raises((DBAPIError, ProgrammingError)):
                async with app.begin() as conn:
                    await scope(conn, tenants["a"])
                    for part in statement.split("; "):
                        await conn.execute(text(part))
                        if part.startswith("SELECT"):
                            raise AssertionError("row_security=off must fail for a role bound by RLS")
    finally:
        await app.dispose()


async def test_randomized_interleaving_on_one_pooled_connection(owner_url):
    tenants = await _seed(owner_url)
    # one connection, reused by every transaction below
    app = create_async_engine(app_role_url(owner_url), pool_size=1, max_overflow=0)
    rng = random.Random(1234)
    written = {tid: 0 for tid in tenants.values()}
    try:
        for _ in range(60):
            tid = rng.choice(list(tenants.values()))
            async with app.begin() as conn:
                await scope(conn, tid)
                if rng.random() < 0.5:
                    await append_events(conn, [_event(tid)])
                    written[tid] += 1
                seen = (await conn.execute(select(AuditEvent.tenant_id))).scalars().all()
                assert set(seen) <= {tid} and len(seen) >= written[tid]
                key_tenants = (await conn.execute(select(ApiKey.tenant_id))).scalars().all()
                assert set(key_tenants) == {tid}
            if rng.random() < 0.3:
                async with app.begin() as conn:  # the scope died with the transaction
                    assert (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar_one() == 0
            await asyncio.sleep(0)
    finally:
        await app.dispose()


async def test_untenanted_rows_and_poison_rows_are_still_written(owner_url):
    """Requests that never authenticated carry no tenant; a row that cannot be stored as it is (a
    value JSON cannot carry) must not block the rows behind it, and is kept without its free-form detail."""
    from gateway.audit.writer import AuditWriter

    app = create_engine(app_role_url(owner_url))
    writer = AuditWriter(app)
    tenants = await _seed(owner_url)
    rows = [_event(None), {**_event(tenants["a"]), "risk": {"score": {"a set is not JSON"}}}, _event(tenants["b"])]
    for row in rows:
        writer.submit(row)
    assert await writer.flush()
    await app.dispose()
    owner = create_engine(owner_url)
    async with owner.connect() as conn:
        stored = {r.request_id: r for r in (await conn.execute(select(AuditEvent.__table__))).all()}
    await owner.dispose()
    assert all(r["request_id"] in stored for r in rows)
    assert stored[rows[1]["request_id"]].risk is None and stored[rows[0]["request_id"]].tenant_id is None


async def _until_a_session_waits_on_a_lock(owner_url: str, task: asyncio.Task, timeout: float = 15.0) -> None:
    owner = create_engine(owner_url)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            async with owner.connect() as conn:
                waiting = (await conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))).scalar_one()
            if waiting:
                return
            assert not task.done(), "finished without waiting on the uncommitted row"
            assert asyncio.get_running_loop().time() < deadline, "never waited on the uncommitted row"
            await asyncio.sleep(0.02)
    finally:
        await owner.dispose()


async def test_desk_logout_as_the_gateway_role(owner_url):
    """Logging out writes and reads `desk_logouts` under row-level security as the gateway's role;
    another tenant's logouts stay invisible to it."""
    from gateway.compliance.desk import session as desk

    tenants = await _seed(owner_url)
    async with create_engine(owner_url).begin() as conn:
        await conn.execute(ApiKey.__table__.update().where(ApiKey.tenant_id.in_(tenants.values()))
                           .values(roles=["compliance"]))
    app = create_engine(app_role_url(owner_url))
    try:
        opened = {}
        for name, tid in tenants.items():
            principal = await desk.principal_for(app, desk.Session(f"key_{name}_{tid}", tid, "s", 2**31))
            assert principal is not None and principal.tenant_id == tid
            _, opened[name] = desk.issue(b"k" * 32, principal)
        await desk.forget(app, opened["a"])
        await desk.forget(app, opened["a"])  # twice is harmless
        assert await desk.principal_for(app, opened["a"]) is None
        assert await desk.principal_for(app, opened["b"]) is not None
        async with app.begin() as conn:
            await scope(conn, tenants["b"])
            assert (await conn.execute(text("SELECT count(*) FROM desk_logouts"))).scalar_one() == 0
        # two replicas log the same session out at once: the second waits on the first's row, then
        # finds it there; neither fails
        async with app.connect() as other:
            first = await other.begin()
            await scope(other, tenants["b"])
            await other.execute(DeskLogout.__table__.insert().values(
                tenant_id=tenants["b"], sid=opened["b"].sid, expires_at=datetime.now(UTC) + timedelta(hours=1)))
            second = asyncio.create_task(desk.forget(app, opened["b"]))
            await _until_a_session_waits_on_a_lock(owner_url, second)  # it reached the uncommitted row
            await first.commit()
            await second
        assert await desk.principal_for(app, opened["b"]) is None
    finally:
        await app.dispose()
