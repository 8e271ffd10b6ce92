"""Tamper-evident audit: a hash chain per tenant, enforced by the database; append-only tables;
hallucination-check outcomes.

- `audit_events` gains `chain`, `seq`, `prev_hash`, `hash` (see gateway/audit/chain.py for the
  canonical serialization), `checks` (hallucination-check outcomes, so they are chained too) and
  `content` (per-tenant HMACs of prompt and answer, or scrubbed text where the policy opts in).
  Existing rows are chained here, in id order.
- An INSERT trigger accepts events only as the direct successors of their chain's head
  (`audit_chain_heads`) and advances the head in the same transaction: the sequence is assigned
  under the head row's lock and cannot skip or fork, whoever writes. Unique (chain, seq) and
  (chain, prev_hash) back that up.
- UPDATE and DELETE are refused by trigger for every role, the owner included, and TRUNCATE on
  Postgres; the gateway's role has no such privilege in the first place. The one exception is
  pruning behind a signed checkpoint, which opens `audit_prune_gate` for one chain up to one
  sequence number inside its own transaction (gateway/audit/retention.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "bulkhead_app"
ZEROS = "0" * 64
BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _chain_existing(bind) -> None:
    from gateway.audit.chain import chain_of, link
    from gateway.models import AuditEvent

    table = AuditEvent.__table__
    rows = [dict(r._mapping) for r in bind.execute(sa.select(table).order_by(table.c.id))]
    by_chain: dict[str, list[dict]] = {}
    for row in rows:
        row["chain"] = chain_of(row["tenant_id"])
        by_chain.setdefault(row["chain"], []).append(row)
    for chain, chained in by_chain.items():
        seq, head = link(chained, 0, ZEROS)
        for row in chained:
            bind.execute(table.update().where(table.c.id == row["id"]).values(
                chain=row["chain"], seq=row["seq"], prev_hash=row["prev_hash"], hash=row["hash"]))
        bind.execute(sa.text("INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (:c, :s, :h)"),
                     {"c": chain, "s": seq, "h": head})


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("checks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("content", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("chain", sa.String(40), nullable=True))
        batch.add_column(sa.Column("seq", BIGINT, nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(40), primary_key=True),
        sa.Column("seq", BIGINT, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_chain_heads"),
    )
    op.create_table(
        "audit_chain_anchors",
        sa.Column("chain", sa.String(40)),
        sa.Column("seq", BIGINT, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_chain_anchors"),
    )
    op.create_table(
        "audit_prune_gate",
        sa.Column("chain", sa.String(40)),
        sa.Column("through_seq", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_prune_gate"),
    )
    op.create_table(
        "hallucination_checks",
        sa.Column("id", BIGINT, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("backend", sa.String(100), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hallucination_checks"),
    )
    op.create_index("ix_hallucination_checks_tenant_request", "hallucination_checks", ["tenant_id", "request_id"])

    _chain_existing(bind)
    with op.batch_alter_table("audit_events") as batch:
        for name, type_ in (("chain", sa.String(40)), ("seq", BIGINT), ("prev_hash", sa.String(64)),
                            ("hash", sa.String(64))):
            batch.alter_column(name, existing_type=type_, nullable=False)
        batch.create_unique_constraint("uq_audit_events_chain_seq", ["chain", "seq"])
        # (tenant_id, request_id) lets unauthenticated rows (NULL tenant) repeat; the chain does not.
        batch.create_unique_constraint("uq_audit_events_chain_request_id", ["chain", "request_id"])
        batch.create_unique_constraint("uq_audit_events_chain_prev_hash", ["chain", "prev_hash"])
    if pg:
        _postgres_guards()
    else:
        _sqlite_guards()


def _postgres_guards() -> None:
    op.execute(f"""
        CREATE FUNCTION bulkhead_chain_head(p_chain text) RETURNS TABLE (seq bigint, hash varchar)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
        BEGIN
          -- Only the chain of the tenant this transaction is scoped to ('' for unauthenticated).
          IF p_chain IS DISTINCT FROM coalesce(current_setting('bulkhead.tenant_id', true), '') THEN
            RAISE EXCEPTION 'audit chain is not the current tenant''s' USING ERRCODE = '42501';
          END IF;
          INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (p_chain, 0, '{ZEROS}')
            ON CONFLICT DO NOTHING;
          RETURN QUERY SELECT h.seq, h.hash FROM audit_chain_heads h WHERE h.chain = p_chain FOR UPDATE;
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION bulkhead_chain_head(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION bulkhead_chain_head(text) TO {APP_ROLE}")
    # Checked once per INSERT statement over all its rows (a transition table), not per row: updating
    # the head row once per event would leave a chain of dead row versions for every later lookup to
    # walk (quadratic in the batch size).
    op.execute(f"""
        CREATE FUNCTION bulkhead_audit_chain() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
        DECLARE r record; cur varchar; head_seq bigint; head_hash varchar;
        BEGIN
          FOR r IN SELECT chain, seq, prev_hash, hash, tenant_id FROM new_rows ORDER BY chain, seq LOOP
            IF r.chain IS DISTINCT FROM coalesce(r.tenant_id, '') THEN
              RAISE EXCEPTION 'audit event in the wrong chain' USING ERRCODE = '23514';
            END IF;
            IF cur IS DISTINCT FROM r.chain THEN
              IF cur IS NOT NULL THEN
                UPDATE audit_chain_heads SET seq = head_seq, hash = head_hash WHERE chain = cur;
              END IF;
              cur := r.chain;
              INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (cur, 0, '{ZEROS}') ON CONFLICT DO NOTHING;
              SELECT h.seq, h.hash INTO head_seq, head_hash FROM audit_chain_heads h WHERE h.chain = cur FOR UPDATE;
            END IF;
            IF r.seq IS DISTINCT FROM head_seq + 1 OR r.prev_hash IS DISTINCT FROM head_hash THEN
              -- A writer that read a stale head: serialization failure, so it re-reads and retries.
              RAISE EXCEPTION 'audit chain moved: expected seq %', head_seq + 1 USING ERRCODE = '40001';
            END IF;
            head_seq := r.seq;
            head_hash := r.hash;
          END LOOP;
          IF cur IS NOT NULL THEN
            UPDATE audit_chain_heads SET seq = head_seq, hash = head_hash WHERE chain = cur;
          END IF;
          RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER audit_events_chain AFTER INSERT ON audit_events REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bulkhead_audit_chain()
    """)
    # One function per table: PL/pgSQL resolves every OLD.<column> it reads against the table at hand.
    for fn, gate in (("bulkhead_append_only", "g.chain = OLD.chain AND OLD.seq <= g.through_seq"),
                     ("bulkhead_checks_append_only", "g.chain = OLD.tenant_id")):
        op.execute(f"""
            CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_prune_gate g WHERE {gate}) THEN
                RETURN OLD;
              END IF;
              RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = '42501';
            END $$
        """)
    op.execute("""
        CREATE FUNCTION bulkhead_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME USING ERRCODE = '42501';
        END $$
    """)
    for table, fn in (("audit_events", "bulkhead_append_only"),
                      ("hallucination_checks", "bulkhead_checks_append_only")):
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {fn}()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION bulkhead_no_truncate()")
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")

    op.execute(f"GRANT SELECT, INSERT ON hallucination_checks TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE hallucination_checks_id_seq TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON audit_chain_anchors TO {APP_ROLE}")
    same_tenant = "current_setting(''bulkhead.tenant_id'', true)"
    for table, column in (("hallucination_checks", "tenant_id"), ("audit_chain_heads", "chain"),
                          ("audit_chain_anchors", "chain")):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"""
            DO $$ BEGIN
              EXECUTE format(
                'CREATE POLICY tenant_isolation ON {table} USING ({column} = {same_tenant} OR current_user = %L)'
                ' WITH CHECK ({column} = {same_tenant} OR current_user = %L)', current_user, current_user);
            END $$;
        """)


def _sqlite_guards() -> None:
    op.execute(f"""
        CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
        WHEN NEW.chain IS NOT coalesce(NEW.tenant_id, '')
          OR NEW.seq IS NOT coalesce((SELECT seq FROM audit_chain_heads WHERE chain = NEW.chain), 0) + 1
          OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM audit_chain_heads WHERE chain = NEW.chain), '{ZEROS}')
        BEGIN SELECT RAISE(ABORT, 'audit chain moved'); END
    """)
    op.execute("""
        CREATE TRIGGER audit_events_chain_head AFTER INSERT ON audit_events
        BEGIN
          INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (NEW.chain, NEW.seq, NEW.hash)
          ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
        END
    """)
    for table, gate in (("audit_events", "g.chain = OLD.chain AND OLD.seq <= g.through_seq"),
                        ("hallucination_checks", "g.chain = OLD.tenant_id")):
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END")
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"WHEN NOT EXISTS (SELECT 1 FROM audit_prune_gate g WHERE {gate}) "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in ("audit_events", "hallucination_checks"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS audit_events_chain ON audit_events")
        for fn in ("bulkhead_append_only()", "bulkhead_checks_append_only()", "bulkhead_no_truncate()",
                   "bulkhead_audit_chain()", "bulkhead_chain_head(text)"):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    else:
        for trigger in ("audit_events_chain", "audit_events_chain_head", "audit_events_no_update",
                        "audit_events_no_delete", "hallucination_checks_no_update", "hallucination_checks_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_hallucination_checks_tenant_request", table_name="hallucination_checks")
    for table in ("hallucination_checks", "audit_prune_gate", "audit_chain_anchors", "audit_chain_heads"):
        op.drop_table(table)
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_chain_prev_hash", type_="unique")
        batch.drop_constraint("uq_audit_events_chain_request_id", type_="unique")
        batch.drop_constraint("uq_audit_events_chain_seq", type_="unique")
        for name in ("hash", "prev_hash", "seq", "chain", "content", "checks"):
            batch.drop_column(name)
