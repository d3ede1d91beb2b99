"""The worker's one table: a lease row per scheduled job, the portable truth of who runs it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["JobLeaseRow"]


class JobLeaseRow(Base):
    """A job's lease (租约) and its last run. A worker runs a job only while it holds the lease: `holder`
    set to its id and `expires_at` in the future (renewed while the job runs, cleared at its end). A
    lease whose holder died expires, and another worker takes it over."""

    __tablename__ = "job_leases"
    __table_args__ = (
        CheckConstraint("last_outcome IS NULL OR last_outcome IN ('ok', 'failed')", name="outcome_known"),
    )

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_detail: Mapped[str | None] = mapped_column(Text)  # what the run did, or why it failed
    runs: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, server_default="0")
