"""Use cases of announcements: the publicity department (`announcement.publish`) writes, publishes and
withdraws; anyone reads what is published (no sign-in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.announcements import domain
from huimin.announcements.domain import Action, AnnouncementKind, AnnouncementStatus
from huimin.announcements.models import AnnouncementRow
from huimin.announcements.repository import AnnouncementRepository
from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow
from huimin.errors import HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id

__all__ = ["Page", "create", "list_announcements", "public_announcement", "public_announcements", "step"]

MAX_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int


def _unknown(announcement_id: str) -> HuiminError:
    return NotFound(f"no announcement {announcement_id!r}", code="unknown_announcement")


def _page_bounds(page: int, page_size: int) -> tuple[int, int]:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            [Problem("page", f"page from 1, page_size from 1 to {MAX_PAGE_SIZE}")], code="invalid_page"
        )
    return (page - 1) * page_size, page_size


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    kind: AnnouncementKind,
    title: str,
    body: str,
    campaign_id: str | None = None,
    clock: Clock,
) -> AnnouncementRow:
    """A draft announcement (or activity rules), not public until published."""
    principal.require(Permission.ANNOUNCEMENT_PUBLISH)
    problems = domain.content_problems(title, body)
    if problems:
        raise InvalidInput(problems, code="invalid_announcement")
    if campaign_id is not None and await session.get(CampaignRow, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    now = clock.now()
    row = AnnouncementRow(
        id=new_id("ann"),
        campaign_id=campaign_id,
        kind=kind.value,
        title=title.strip(),
        body=body.strip(),
        status=AnnouncementStatus.DRAFT.value,
        created_at=now,
        created_by=principal.actor_id,
        updated_at=now,
        updated_by=principal.actor_id,
    )
    AnnouncementRepository(session).add(row)
    await audit.record(
        session,
        principal=principal,
        action="announcement.create",
        object_type="announcement",
        object_id=row.id,
        at=now,
        detail={"kind": kind.value, "campaign_id": campaign_id},
    )
    await session.flush()
    return row


async def step(
    session: AsyncSession,
    *,
    principal: Principal,
    announcement_id: str,
    action: Action,
    published_at: datetime | None = None,
    clock: Clock,
) -> AnnouncementRow:
    """Publish (now, or from `published_at`) or withdraw."""
    principal.require(Permission.ANNOUNCEMENT_PUBLISH)
    if published_at is not None and published_at.tzinfo is None:
        raise InvalidInput([Problem("published_at", "give the time zone")], code="invalid_announcement")
    row = await AnnouncementRepository(session).get(announcement_id, for_update=True)
    if row is None:
        raise _unknown(announcement_id)
    before = AnnouncementStatus(row.status)
    after = domain.next_status(before, action)
    now = clock.now()
    if action is Action.PUBLISH:
        row.published_at, row.withdrawn_at = published_at or now, None
    else:
        row.withdrawn_at = now
    row.status, row.updated_at, row.updated_by = after.value, now, principal.actor_id
    await audit.record(
        session,
        principal=principal,
        action=f"announcement.{action.value}",
        object_type="announcement",
        object_id=row.id,
        at=now,
        detail={"from": before.value, "to": after.value},
    )
    await session.flush()
    return row


async def list_announcements(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None = None,
    status: AnnouncementStatus | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page[AnnouncementRow]:
    """Every announcement, drafts and withdrawn ones included (the publicity department)."""
    principal.require(Permission.ANNOUNCEMENT_PUBLISH)
    offset, limit = _page_bounds(page, page_size)
    items, total = await AnnouncementRepository(session).page(
        campaign_id=campaign_id, kind=None, status=status, public_at=None, offset=offset, limit=limit
    )
    return Page(items, total, page, page_size)


async def public_announcements(
    session: AsyncSession,
    *,
    campaign_id: str | None = None,
    kind: AnnouncementKind | None = None,
    clock: Clock,
    page: int = 1,
    page_size: int = 20,
) -> Page[AnnouncementRow]:
    """What residents see: published announcements whose time has come, newest first."""
    offset, limit = _page_bounds(page, page_size)
    items, total = await AnnouncementRepository(session).page(
        campaign_id=campaign_id, kind=kind, status=None, public_at=clock.now(), offset=offset, limit=limit
    )
    return Page(items, total, page, page_size)


async def public_announcement(
    session: AsyncSession, *, announcement_id: str, clock: Clock
) -> AnnouncementRow:
    row = await AnnouncementRepository(session).get(announcement_id)
    if row is None or not domain.is_public(AnnouncementStatus(row.status), row.published_at, clock.now()):
        raise _unknown(announcement_id)  # a draft or withdrawn one does not exist for the public
    return row
