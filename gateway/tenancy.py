"""Per-transaction tenant scope. On Postgres it sets `bulkhead.tenant_id` for the current
transaction only (so a pooled connection never carries one tenant's scope into another's
transaction), and row-level security does the rest. SQLite has no RLS; every query there names the
tenant explicitly, which the same code does on Postgres too."""

from __future__ import annotations

from sqlalchemy import text

SET_TENANT = text("SELECT set_config('bulkhead.tenant_id', :tenant, true)")


async def scope(conn_or_session, tenant_id: str) -> None:
    """Call first thing inside a transaction; a bound parameter, never string formatting."""
    bind = conn_or_session.bind if hasattr(conn_or_session, "bind") else conn_or_session
    if bind.dialect.name == "postgresql":
        await conn_or_session.execute(SET_TENANT, {"tenant": tenant_id})
