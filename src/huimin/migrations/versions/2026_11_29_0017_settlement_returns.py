"""settlement returns: finance may return (退回) a prepared run with a reason; the run and its lines
become `returned`, and the day may be prepared again (one live run per day instead of one run)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_RUN_STATUSES = "('prepared', 'approved', 'closed', 'returned')"
_LINE_STATUSES = "('prepared', 'sent', 'offset', 'paid', 'failed', 'frozen', 'returned')"
_LIVE = "status <> 'returned'"


def upgrade() -> None:
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("returned_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("returned_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("returned_by_name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("return_reason", sa.String(length=500), nullable=True))
        batch_op.drop_constraint(op.f("uq_settlement_runs_campaign_id_business_day"), type_="unique")
        batch_op.drop_constraint(op.f("ck_settlement_runs_status_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_settlement_runs_approval_recorded"), type_="check")
        batch_op.create_check_constraint("status_known", f"status IN {_RUN_STATUSES}")
        batch_op.create_check_constraint(
            "approval_recorded", "status IN ('prepared', 'returned') OR approved_at IS NOT NULL"
        )
        batch_op.create_check_constraint(
            "return_recorded",
            "(status = 'returned') = (returned_at IS NOT NULL AND returned_by IS NOT NULL "
            "AND return_reason IS NOT NULL AND approved_at IS NULL)",
        )
        batch_op.create_index(
            "uq_settlement_runs_live_day",
            ["campaign_id", "business_day"],
            unique=True,
            sqlite_where=sa.text(_LIVE),
            postgresql_where=sa.text(_LIVE),
        )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_settlement_lines_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", f"status IN {_LINE_STATUSES}")


def downgrade() -> None:
    # Returned runs and lines cannot be expressed before this revision: refuse rather than lose them.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM settlement_runs WHERE status = 'returned'")).scalar():
        raise RuntimeError("returned settlement runs exist: they cannot be downgraded")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_settlement_lines_status_known"), type_="check")
        batch_op.create_check_constraint(
            "status_known", "status IN ('prepared', 'sent', 'offset', 'paid', 'failed', 'frozen')"
        )
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.drop_index("uq_settlement_runs_live_day")
        batch_op.drop_constraint(op.f("ck_settlement_runs_return_recorded"), type_="check")
        batch_op.drop_constraint(op.f("ck_settlement_runs_approval_recorded"), type_="check")
        batch_op.drop_constraint(op.f("ck_settlement_runs_status_known"), type_="check")
        batch_op.create_check_constraint(
            "approval_recorded", "status = 'prepared' OR approved_at IS NOT NULL"
        )
        batch_op.create_check_constraint("status_known", "status IN ('prepared', 'approved', 'closed')")
        batch_op.create_unique_constraint(
            "uq_settlement_runs_campaign_id_business_day", ["campaign_id", "business_day"]
        )
        batch_op.drop_column("return_reason")
        batch_op.drop_column("returned_by_name")
        batch_op.drop_column("returned_by")
        batch_op.drop_column("returned_at")
