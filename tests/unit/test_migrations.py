"""Migrations go from empty to head and back down on both databases, and head matches the models."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.db import create_engine
from gateway.migrate import downgrade, upgrade
from gateway.models import Base


async def _inspect(url: str):
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        return tables, diff
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_url(request, pg_database_factory, tmp_path):
    if request.param == "postgres":
        return pg_database_factory()
    return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"


def test_upgrade_downgrade_upgrade(fresh_url):
    upgrade(fresh_url)
    tables, diff = asyncio.run(_inspect(fresh_url))
    assert {"tenants", "api_keys", "audit_events", "alembic_version"} <= tables
    assert diff == [], f"models and migrations disagree: {diff}"
    downgrade(fresh_url, "base")
    tables, _ = asyncio.run(_inspect(fresh_url))
    assert tables <= {"alembic_version"}
    upgrade(fresh_url)
    tables, _ = asyncio.run(_inspect(fresh_url))
    assert "audit_events" in tables


async def _create_role_twice_at_once(sql: str, role: str) -> BaseException | None:
    """Run `sql` on two connections, the second while the first's transaction is still open, as two
    migrations of two databases on one new server do; the second's error, if any."""
    import asyncpg

    from tests.conftest import PG_ADMIN

    first, second = await asyncpg.connect(PG_ADMIN), await asyncpg.connect(PG_ADMIN)
    try:
        tx = first.transaction()
        await tx.start()
        await first.execute(sql)
        blocked = asyncio.ensure_future(second.execute(sql))
        pid = second.get_server_pid()
        for _ in range(500):  # until the second waits on the first's uncommitted role
            waiting = await first.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
            if waiting == "Lock" or blocked.done():
                break
            await asyncio.sleep(0.01)
        await tx.commit()
        try:
            await blocked
        except Exception as exc:  # returned for the test to judge
            return exc
        return None
    finally:
        await first.execute(f"DROP ROLE IF EXISTS {role}")
        await first.close()
        await second.close()


def test_two_databases_migrated_at_once_share_the_app_role():
    import uuid

    import asyncpg

    from tests.conftest import load_file

    create_role_sql = load_file("migrations/versions/0003_tenant_isolation.py").create_role_sql
    role = "bulkhead_race_" + uuid.uuid4().hex[:8]
    assert asyncio.run(_create_role_twice_at_once(create_role_sql(role), role)) is None
    # checking pg_roles first is not enough: both find the role missing (what `migrate` failed with)
    checked = (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} LOGIN NOSUPERUSER; END IF; END $$;"
    )
    assert isinstance(asyncio.run(_create_role_twice_at_once(checked, role)), asyncpg.UniqueViolationError)
