"""HTTP for announcements. `router` carries both parts:

- `/api/v1/announcements` (public, no sign-in): what is published, newest first.
- `/api/v1/staff/announcements` (the publicity department): drafts, publish, withdraw.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from huimin.announcements import service
from huimin.announcements.domain import Action, AnnouncementKind, AnnouncementStatus
from huimin.announcements.schemas import (
    AnnouncementIn,
    AnnouncementOut,
    AnnouncementPage,
    PublicAnnouncementOut,
    PublicAnnouncementPage,
    PublishIn,
    announcement_out,
    announcement_page,
    public_announcement_out,
    public_announcement_page,
)
from huimin.deps import ClockDep, SessionDep, StaffDep

__all__ = ["public_router", "router", "staff_router"]

public_router = APIRouter(prefix="/api/v1/announcements", tags=["announcements"])
staff_router = APIRouter(prefix="/api/v1/staff/announcements", tags=["announcements (console)"])

_ACT: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden (only the publicity department), csrf_failed"},
    404: {"description": "unknown_announcement, unknown_campaign"},
    409: {"description": "invalid_transition"},
    422: {"description": "invalid_request, invalid_announcement"},
}


@public_router.get(
    "", response_model=PublicAnnouncementPage, summary="Published announcements and rules (public)"
)
async def list_public(
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    kind: Annotated[AnnouncementKind | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
) -> PublicAnnouncementPage:
    found = await service.public_announcements(
        session, campaign_id=campaign_id, kind=kind, clock=clock, page=page, page_size=page_size
    )
    return public_announcement_page(found)


@public_router.get(
    "/{announcement_id}",
    response_model=PublicAnnouncementOut,
    summary="One published announcement (public)",
    responses={404: {"description": "unknown_announcement"}},
)
async def get_public(announcement_id: str, session: SessionDep, clock: ClockDep) -> PublicAnnouncementOut:
    row = await service.public_announcement(session, announcement_id=announcement_id, clock=clock)
    return public_announcement_out(row)


@staff_router.get(
    "", response_model=AnnouncementPage, summary="Every announcement, drafts included", responses=_ACT
)
async def list_staff(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[AnnouncementStatus | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> AnnouncementPage:
    found = await service.list_announcements(
        session, principal=principal, campaign_id=campaign_id, status=status, page=page, page_size=page_size
    )
    return announcement_page(found)


@staff_router.post(
    "", status_code=201, response_model=AnnouncementOut, summary="Write a draft", responses=_ACT
)
async def create(
    body: AnnouncementIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> AnnouncementOut:
    row = await service.create(
        session,
        principal=principal,
        kind=body.kind,
        title=body.title,
        body=body.body,
        campaign_id=body.campaign_id,
        clock=clock,
    )
    return announcement_out(row)


@staff_router.post(
    "/{announcement_id}/publish", response_model=AnnouncementOut, summary="Publish", responses=_ACT
)
async def publish(
    announcement_id: str, body: PublishIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> AnnouncementOut:
    row = await service.step(
        session,
        principal=principal,
        announcement_id=announcement_id,
        action=Action.PUBLISH,
        published_at=body.published_at,
        clock=clock,
    )
    return announcement_out(row)


@staff_router.post(
    "/{announcement_id}/unpublish", response_model=AnnouncementOut, summary="Withdraw", responses=_ACT
)
async def unpublish(
    announcement_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> AnnouncementOut:
    row = await service.step(
        session, principal=principal, announcement_id=announcement_id, action=Action.UNPUBLISH, clock=clock
    )
    return announcement_out(row)


router = APIRouter()
router.include_router(public_router)
router.include_router(staff_router)
