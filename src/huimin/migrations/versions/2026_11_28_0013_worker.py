"""worker: the leases of scheduled jobs, and the risk events already evaluated

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("last_started_at", UtcDateTime(), nullable=True),
        sa.Column("last_finished_at", UtcDateTime(), nullable=True),
        sa.Column("last_success_at", UtcDateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column("runs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failures", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "last_outcome IS NULL OR last_outcome IN ('ok', 'failed')",
            name=op.f("ck_job_leases_outcome_known"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "risk_evaluated_events",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("evaluated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name=op.f("pk_risk_evaluated_events")),
    )


def downgrade() -> None:
    op.drop_table("risk_evaluated_events")
    op.drop_table("job_leases")
