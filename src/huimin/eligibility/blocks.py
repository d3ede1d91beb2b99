"""The claim block list (禁止领取): persons and devices a risk case's sanction keeps from claiming and from
entering lotteries in one campaign.

A person is blocked under every app account it uses (`residents.person_id`); a device under the keyed
hash its app accounts are registered with (`residents.device_digest`), whoever the person. Risk alerts
name persons and devices by exactly these ids, so a case's subject becomes the block's subject as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Exists, and_, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.eligibility.models import ClaimBlockRow, ResidentRow
from huimin.kit.ids import new_id

__all__ = ["BlockSubject", "active_block", "add_block", "blocked", "blocks_of_case", "persons_on_device"]


class BlockSubject(StrEnum):
    PERSON = "person"
    DEVICE = "device"


def _active(campaign_id: Any, person_id: Any, device_digest: Any) -> ColumnElement[bool]:
    """A block, not lifted, on the person or on the device in the campaign: the arguments are bound
    parameters or columns of an enclosing query."""
    return and_(
        ClaimBlockRow.campaign_id == campaign_id,
        ClaimBlockRow.lifted_at.is_(None),
        or_(
            and_(
                ClaimBlockRow.subject_kind == BlockSubject.PERSON.value,
                ClaimBlockRow.subject_id == person_id,
            ),
            and_(
                ClaimBlockRow.subject_kind == BlockSubject.DEVICE.value,
                ClaimBlockRow.subject_id == device_digest,
            ),
        ),
    )


# Built once: every claim runs it, and building it per call cost more than running it.
_ACTIVE_BLOCK = (
    select(ClaimBlockRow)
    .where(_active(bindparam("campaign_id"), bindparam("person_id"), bindparam("device_digest")))
    .limit(1)
)


def blocked(campaign_id: Any, person_id: Any, device_digest: Any) -> Exists:
    """`active_block` as an EXISTS over columns of an enclosing query (the claim's one read)."""
    return exists().where(_active(campaign_id, person_id, device_digest))


async def active_block(
    session: AsyncSession, *, campaign_id: str, person_id: str, device_digest: str
) -> ClaimBlockRow | None:
    """The block, not lifted, on this person or on this device in the campaign, if any."""
    return await session.scalar(
        _ACTIVE_BLOCK,
        {"campaign_id": campaign_id, "person_id": person_id, "device_digest": device_digest},
    )


def add_block(
    session: AsyncSession,
    *,
    campaign_id: str,
    subject: BlockSubject,
    subject_id: str,
    case_id: str,
    measure: str,
    reason: str,
    actor_id: str,
    at: datetime,
) -> ClaimBlockRow:
    """A new block, in the caller's transaction (it takes effect for claims when that commits)."""
    row = ClaimBlockRow(
        id=new_id("blk"),
        campaign_id=campaign_id,
        subject_kind=subject.value,
        subject_id=subject_id,
        case_id=case_id,
        measure=measure,
        reason=reason,
        vouchers_revoked=0,
        value_revoked_fen=0,
        blocked_at=at,
        blocked_by=actor_id,
        lifted_at=None,
    )
    session.add(row)
    return row


async def blocks_of_case(session: AsyncSession, case_id: str) -> Sequence[ClaimBlockRow]:
    return (
        await session.scalars(
            select(ClaimBlockRow).where(ClaimBlockRow.case_id == case_id).order_by(ClaimBlockRow.blocked_at)
        )
    ).all()


async def persons_on_device(session: AsyncSession, device_digest: str) -> list[str]:
    """Every person with an app account registered on this device."""
    rows = await session.scalars(
        select(ResidentRow.person_id).where(ResidentRow.device_digest == device_digest).distinct()
    )
    return sorted(rows)
