"""ledger: transactions and postings (append-only, zero-sum enforced by the database), deposits

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:16:42.237254
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# PostgreSQL: a transaction must sum to zero over at least two postings of its own campaign, checked
# at COMMIT by deferred constraint triggers, so the postings can be written one after another. One
# fires for the transaction row (catches a transaction without postings), one for each posting
# (catches a posting added to a transaction committed earlier). SQLSTATE 23514 (check_violation)
# surfaces as an IntegrityError, like any other constraint.
_POSTGRES_UP = (
    """
    CREATE FUNCTION ledger_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        tx varchar;
        legs bigint;
        total numeric;
        strays bigint;
    BEGIN
        IF TG_TABLE_NAME = 'ledger_transactions' THEN
            tx := NEW.id;
        ELSE
            tx := NEW.transaction_id;
        END IF;
        SELECT count(*), coalesce(sum(p.amount_fen), 0), count(*) FILTER (WHERE p.campaign_id <> t.campaign_id)
          INTO legs, total, strays
          FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.transaction_id
         WHERE p.transaction_id = tx;
        IF legs < 2 OR total <> 0 OR strays > 0 THEN
            RAISE EXCEPTION 'ledger transaction % is unbalanced: % postings summing to % fen (% of another campaign)',
                tx, legs, total, strays
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_transactions_balanced
        AFTER INSERT ON ledger_transactions DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced()
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_postings_balanced
        AFTER INSERT ON ledger_postings DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced()
    """,
    # Append-only: corrections are new transactions, never edits.
    """
    CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: record a correcting transaction instead', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        for table in ("ledger_transactions", "ledger_postings")
    ),
    *(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        for table in ("ledger_transactions", "ledger_postings")
    ),
)

# SQLite has no deferred triggers, so the order of writing seals a transaction instead: its postings
# first (their foreign key is deferred to COMMIT, which also refuses postings whose transaction never
# comes), then the transaction row, whose insert checks the postings. A posting for a transaction
# already written is refused, so a sealed transaction cannot be unbalanced later. RAISE(ABORT) is a
# constraint error (IntegrityError). Beware: a later batch migration that copies these tables drops
# their triggers and must create them again.
_SQLITE_UP = (
    """
    CREATE TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    WHEN (SELECT count(*) FROM ledger_postings WHERE transaction_id = NEW.id) < 2
      OR (SELECT sum(amount_fen) FROM ledger_postings WHERE transaction_id = NEW.id) <> 0
      OR EXISTS (
          SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id AND campaign_id <> NEW.campaign_id
      )
    BEGIN
        SELECT RAISE(ABORT, 'ledger transaction is unbalanced: its postings must sum to zero');
    END
    """,
    """
    CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
    WHEN EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id)
    BEGIN
        SELECT RAISE(ABORT, 'ledger transaction is sealed: postings are written before their transaction');
    END
    """,
    *(
        f"""
        CREATE TRIGGER {table}_append_only_{action.lower()} BEFORE {action} ON {table}
        BEGIN
            SELECT RAISE(ABORT, '{table} is append-only: record a correcting transaction instead');
        END
        """
        for table in ("ledger_transactions", "ledger_postings")
        for action in ("UPDATE", "DELETE")
    ),
)


def upgrade() -> None:
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_ledger_transactions_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint(
            "campaign_id", "kind", "reference", name=op.f("uq_ledger_transactions_campaign_id_kind_reference")
        ),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_transactions_at"), ["at"], unique=False)

    op.create_table(
        "ledger_deposits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("funder_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_by_name", sa.String(length=64), nullable=False),
        sa.Column("requested_by_role", sa.String(length=32), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_by_name", sa.String(length=64), nullable=True),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
        sa.Column("transaction_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "(status = 'requested' AND approved_by IS NULL AND approved_at IS NULL) OR (status = 'approved' AND approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name=op.f("ck_ledger_deposits_approval_complete"),
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'approved')", name=op.f("ck_ledger_deposits_status_known")
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_ledger_deposits_amount_positive")),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by <> requested_by",
            name=op.f("ck_ledger_deposits_maker_checker"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_ledger_deposits_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["funder_id"], ["funders.id"], name=op.f("fk_ledger_deposits_funder_id_funders")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_deposits_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_deposits")),
    )
    with op.batch_alter_table("ledger_deposits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_deposits_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "ledger_postings",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen <> 0", name=op.f("ck_ledger_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_postings_transaction_id_ledger_transactions"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_postings")),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_campaign_account", ["campaign_id", "account"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ledger_postings_transaction_id"), ["transaction_id"], unique=False
        )

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in _POSTGRES_UP:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    # Dropping a table drops its triggers; the PostgreSQL functions go after the tables.
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_postings_transaction_id"))
        batch_op.drop_index("ix_ledger_postings_campaign_account")

    op.drop_table("ledger_postings")
    with op.batch_alter_table("ledger_deposits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_deposits_campaign_id"))

    op.drop_table("ledger_deposits")
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transactions_at"))

    op.drop_table("ledger_transactions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_transaction_balanced()")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
