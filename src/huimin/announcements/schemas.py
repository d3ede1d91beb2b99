"""API shapes of announcements. Bodies reject unknown fields."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from huimin.announcements import domain
from huimin.announcements.domain import AnnouncementKind, AnnouncementStatus
from huimin.announcements.models import AnnouncementRow
from huimin.announcements.service import Page

__all__ = [
    "AnnouncementIn",
    "AnnouncementOut",
    "AnnouncementPage",
    "PublicAnnouncementOut",
    "PublicAnnouncementPage",
    "PublishIn",
    "announcement_out",
    "announcement_page",
    "public_announcement_out",
    "public_announcement_page",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnnouncementIn(_In):
    kind: AnnouncementKind = AnnouncementKind.ANNOUNCEMENT
    title: str = Field(min_length=1, max_length=domain.TITLE_MAX_LENGTH)
    body: str = Field(min_length=1, max_length=domain.BODY_MAX_LENGTH, description="in Chinese; plain text")
    campaign_id: str | None = Field(default=None, max_length=32)


class PublishIn(_In):
    published_at: AwareDatetime | None = Field(default=None, description="public from then (default: now)")


class PublicAnnouncementOut(BaseModel):
    id: str
    campaign_id: str | None
    kind: AnnouncementKind
    kind_label: str
    title: str
    body: str
    published_at: datetime | None


class AnnouncementOut(PublicAnnouncementOut):
    status: AnnouncementStatus
    withdrawn_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PublicAnnouncementPage(BaseModel):
    items: list[PublicAnnouncementOut]
    total: int
    page: int
    page_size: int


class AnnouncementPage(BaseModel):
    items: list[AnnouncementOut]
    total: int
    page: int
    page_size: int


def public_announcement_out(row: AnnouncementRow) -> PublicAnnouncementOut:
    kind = AnnouncementKind(row.kind)
    return PublicAnnouncementOut(
        id=row.id,
        campaign_id=row.campaign_id,
        kind=kind,
        kind_label=kind.label,
        title=row.title,
        body=row.body,
        published_at=row.published_at,
    )


def announcement_out(row: AnnouncementRow) -> AnnouncementOut:
    return AnnouncementOut(
        **public_announcement_out(row).model_dump(),
        status=AnnouncementStatus(row.status),
        withdrawn_at=row.withdrawn_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def public_announcement_page(page: Page[AnnouncementRow]) -> PublicAnnouncementPage:
    return PublicAnnouncementPage(
        items=[public_announcement_out(row) for row in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )


def announcement_page(page: Page[AnnouncementRow]) -> AnnouncementPage:
    return AnnouncementPage(
        items=[announcement_out(row) for row in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )
