"""Tenant isolation in Postgres: row-level security, enabled and forced, on every tenant-owned table;
the role the gateway connects as; unique constraints that include tenant_id.

The gateway runs as `bulkhead_app`: not a superuser, not the tables' owner, no BYPASSRLS. It sets
the tenant per transaction (`set_config('bulkhead.tenant_id', :tenant, true)`); with no tenant set,
every query sees zero rows. The one lookup that must work before the tenant is known (an API key
by its HMAC) goes through a SECURITY DEFINER function that returns that single row. The role that
runs migrations owns the tables and is the only exemption the policies name, for operators' CLI.

SQLite has no row-level security; the data-access layer scopes every query by tenant there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APP_ROLE = "bulkhead_app"
TENANT_TABLES = {"tenants": "id", "api_keys": "tenant_id", "audit_events": "tenant_id"}


def create_role_sql(role: str) -> str:
    """Create the role unless it exists. Roles belong to the cluster, not the database, so two
    databases migrated at once on a new server (two replicas, two test workers) both find it missing;
    the second CREATE ROLE then waits for the first transaction and fails on pg_authid's unique index
    (seen: `migrate` exiting 1 with UniqueViolationError). Either way the role exists afterwards."""
    return f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL;
        END $$;
    """


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("audit_events") as batch:
            batch.drop_constraint("uq_audit_events_request_id", type_="unique")
            batch.create_unique_constraint("uq_audit_events_tenant_id_request_id", ["tenant_id", "request_id"])
        with op.batch_alter_table("api_keys") as batch:
            batch.drop_constraint("uq_api_keys_key_hash", type_="unique")
            batch.create_unique_constraint("uq_api_keys_tenant_id_key_hash", ["tenant_id", "key_hash"])
        op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"])
        return
    op.drop_constraint("uq_audit_events_request_id", "audit_events", type_="unique")
    op.create_unique_constraint("uq_audit_events_tenant_id_request_id", "audit_events", ["tenant_id", "request_id"])
    op.drop_constraint("uq_api_keys_key_hash", "api_keys", type_="unique")
    op.create_unique_constraint("uq_api_keys_tenant_id_key_hash", "api_keys", ["tenant_id", "key_hash"])
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"])
    op.execute(create_role_sql(APP_ROLE))
    op.execute(f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database()); END $$")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON tenants TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE (revoked_at) ON api_keys TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON audit_events TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE audit_events_id_seq TO {APP_ROLE}")
    op.execute("GRANT SELECT ON alembic_version TO " + APP_ROLE)
    for table, column in TENANT_TABLES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        # `current_user = <owner>` exempts only the role that owns the schema (migrations, the
        # operators' CLI); the gateway's role can never become it.
        same_tenant = f"{column} = current_setting(''bulkhead.tenant_id'', true)"
        op.execute(f"""
            DO $$ BEGIN
              EXECUTE format(
                'CREATE POLICY tenant_isolation ON {table} USING ({same_tenant} OR current_user = %L)'
                ' WITH CHECK ({same_tenant} OR current_user = %L)', current_user, current_user);
            END $$;
        """)
    # Requests that never authenticated, and system events, carry no tenant: insertable, never readable
    # by the gateway.
    op.execute("CREATE POLICY untenanted_insert ON audit_events FOR INSERT WITH CHECK (tenant_id IS NULL)")
    op.execute("""
        CREATE FUNCTION bulkhead_key_lookup(p_hash text)
        RETURNS TABLE (id varchar, tenant_id varchar, key_hash varchar, roles json, models json,
                       expires_at timestamptz, revoked_at timestamptz, tenant_name varchar)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
          SELECT k.id, k.tenant_id, k.key_hash, k.roles, k.models, k.expires_at, k.revoked_at, t.name
          FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = p_hash
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION bulkhead_key_lookup(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION bulkhead_key_lookup(text) TO {APP_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index("ix_api_keys_key_hash", table_name="api_keys")
        with op.batch_alter_table("api_keys") as batch:
            batch.drop_constraint("uq_api_keys_tenant_id_key_hash", type_="unique")
            batch.create_unique_constraint("uq_api_keys_key_hash", ["key_hash"])
        with op.batch_alter_table("audit_events") as batch:
            batch.drop_constraint("uq_audit_events_tenant_id_request_id", type_="unique")
            batch.create_unique_constraint("uq_audit_events_request_id", ["request_id"])
        return
    op.execute("DROP FUNCTION IF EXISTS bulkhead_key_lookup(text)")
    op.execute("DROP POLICY IF EXISTS untenanted_insert ON audit_events")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.drop_index("ix_api_keys_key_hash", table_name="api_keys")
    op.drop_constraint("uq_api_keys_tenant_id_key_hash", "api_keys", type_="unique")
    op.create_unique_constraint("uq_api_keys_key_hash", "api_keys", ["key_hash"])
    op.drop_constraint("uq_audit_events_tenant_id_request_id", "audit_events", type_="unique")
    op.create_unique_constraint("uq_audit_events_request_id", "audit_events", ["request_id"])
