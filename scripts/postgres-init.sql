-- The compose stack's database (docker-compose.yml) and its two roles:
--   bulkhead      owns the schema: `bulkhead migrate` and the operator CLI (BULKHEAD_ADMIN_DATABASE_URL)
--   bulkhead_app  what the gateway connects as (DATABASE_URL): not superuser, not owner, no
--                 BYPASSRLS, so row-level security applies. The migrations create it where it is
--                 missing, but only a role with CREATEROLE may, and the owner has none: it is
--                 created here exactly as the migration would (0003_tenant_isolation.py) and the
--                 migrations grant it what it may touch.
CREATE ROLE bulkhead LOGIN PASSWORD 'bulkhead';
CREATE ROLE bulkhead_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE bulkhead OWNER bulkhead;
