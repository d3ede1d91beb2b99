"""claim locations: where a claim was made (GCJ-02 rounded to ~100 m, the client's /24 or /48 network), the
offline IP-region table, and the location-spoofing rule among the alerts' known rules

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_RULES = (
    "self_claim_self_redeem",
    "threshold_hugging",
    "split_orders",
    "velocity",
    "off_hours",
    "refund_soon",
    "refund_rate",
    "device_farm",
    "resale_ring",
)


def _rule_known(rules: tuple[str, ...]) -> str:
    return f"rule IN ({', '.join(repr(rule) for rule in rules)})"


def upgrade() -> None:
    # nullable: lottery wins and the claims made before this revision have no location
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_lng", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("claim_lat", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("claim_ip_prefix", sa.String(length=64), nullable=True))

    op.create_table(
        "risk_ip_regions",
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("in_city", sa.Boolean(), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("network", name=op.f("pk_risk_ip_regions")),
    )

    with op.batch_alter_table("risk_alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_risk_alerts_rule_known"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_risk_alerts_rule_known"), _rule_known((*_RULES, "location_spoofing"))
        )


def downgrade() -> None:
    op.execute("DELETE FROM risk_alerts WHERE rule = 'location_spoofing'")  # the old check refuses them
    with op.batch_alter_table("risk_alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_risk_alerts_rule_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_risk_alerts_rule_known"), _rule_known(_RULES))

    op.drop_table("risk_ip_regions")

    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_column("claim_ip_prefix")
        batch_op.drop_column("claim_lat")
        batch_op.drop_column("claim_lng")
