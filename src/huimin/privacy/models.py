"""Tables of the privacy package: the record of each purge (what was erased, by whom, when)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["PrivacyPurgeRow"]


class PrivacyPurgeRow(Base):
    """One run of `huimin privacy purge` on a campaign. A campaign with a (non-dry) purge counts as
    purged when a later purge of another campaign decides whose data it may erase."""

    __tablename__ = "privacy_purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    reference: Mapped[date] = mapped_column(Date)
    reference_kind: Mapped[str] = mapped_column(String(24))
    after_days: Mapped[int] = mapped_column(Integer)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    actor_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
