"""Audit rows record the decision: PII counts by type and treatment (never values), risk tier and
signals, and every candidate backend with the reason it was rejected.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("pii", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("risk", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("route", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("route")
        batch.drop_column("risk")
        batch.drop_column("pii")
