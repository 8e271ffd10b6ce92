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
