"""Desk logouts shared by every replica: a logged-out session id is refused by all of them, not
only by the process that served the logout.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "bulkhead_app"


def upgrade() -> None:
    op.create_table(
        "desk_logouts",
        sa.Column("tenant_id", sa.String(40), primary_key=True),
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"GRANT SELECT, INSERT, DELETE ON desk_logouts TO {APP_ROLE}")
    op.execute("ALTER TABLE desk_logouts ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE desk_logouts FORCE ROW LEVEL SECURITY")
    same_tenant = "current_setting(''bulkhead.tenant_id'', true)"
    op.execute(f"""
        DO $$ BEGIN
          EXECUTE format(
            'CREATE POLICY tenant_isolation ON desk_logouts USING (tenant_id = {same_tenant} OR current_user = %L)'
            ' WITH CHECK (tenant_id = {same_tenant} OR current_user = %L)', current_user, current_user);
        END $$;
    """)


def downgrade() -> None:
    op.drop_table("desk_logouts")
