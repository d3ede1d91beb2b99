"""Tables of announcements: one row per announcement or set of activity rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.announcements.domain import AnnouncementKind, AnnouncementStatus
from huimin.db import Base, UtcDateTime

__all__ = ["AnnouncementRow"]


def _one_of(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class AnnouncementRow(Base):
    """公告 / 活动规则, in Chinese, of one campaign or of the platform (campaign_id NULL)."""

    __tablename__ = "announcements"
    __table_args__ = (
        CheckConstraint(_one_of("kind", AnnouncementKind), name="kind_known"),
        CheckConstraint(_one_of("status", AnnouncementStatus), name="status_known"),
        CheckConstraint("status <> 'published' OR published_at IS NOT NULL", name="published_has_time"),
        Index("ix_announcements_public", "status", "published_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))
