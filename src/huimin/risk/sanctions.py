"""The sanction of a person's or a device's case (issue 7: 回收未使用的券, 禁止身份和设备领取): a block on
the claim block list, and with `block_and_revoke` the unused vouchers of the campaign revoked, all in the
caller's transaction (the case's step), so the case, the block, the vouchers and the ledger move together.

For a device, the vouchers revoked are those of every person with an app account on that device: the
accounts a device farm registers are the point of blocking it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.claims.revocation import revoke_unused
from huimin.eligibility import blocks
from huimin.eligibility.blocks import BlockSubject
from huimin.eligibility.models import ClaimBlockRow
from huimin.kit.clock import Clock
from huimin.risk.domain import Measure
from huimin.risk.models import RiskCaseRow

__all__ = ["block_subject"]


async def block_subject(
    session: AsyncSession,
    *,
    case: RiskCaseRow,
    measure: Measure,
    principal: Principal,
    reason: str,
    clock: Clock,
) -> ClaimBlockRow:
    """Block the case's person or device from claiming in the case's campaign and, for
    `block_and_revoke`, revoke the unused vouchers; the block row records how many and their value."""
    subject = BlockSubject(case.subject_kind)
    now = clock.now()
    row = blocks.add_block(
        session,
        campaign_id=case.campaign_id,
        subject=subject,
        subject_id=case.subject_id,
        case_id=case.id,
        measure=measure.value,
        reason=reason,
        actor_id=principal.actor_id,
        at=now,
    )
    if measure is Measure.BLOCK_AND_REVOKE:
        persons = (
            [case.subject_id]
            if subject is BlockSubject.PERSON
            else await blocks.persons_on_device(session, case.subject_id)
        )
        revoked = await revoke_unused(session, campaign_id=case.campaign_id, person_ids=persons, at=now)
        row.vouchers_revoked, row.value_revoked_fen = revoked.vouchers, revoked.value_fen
    await session.flush()
    return row
