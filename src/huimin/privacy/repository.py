"""All queries of the privacy purge. IN lists are chunked: SQLite caps bound parameters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import RoundRow
from huimin.claims.models import LotteryEntryRow, VoucherRow
from huimin.complaints.models import ComplaintRow
from huimin.eligibility.models import PersonIdentifierRow, ResidentRow
from huimin.merchants.models import MerchantRow
from huimin.privacy.domain import PURGED_PREFIX
from huimin.privacy.models import PrivacyPurgeRow
from huimin.settlement.domain import LineStatus
from huimin.settlement.models import RecoveryRow, SettlementLineRow, SettlementRunRow

__all__ = ["PrivacyRepository"]

_CHUNK = 500
# Payout lines that will never be sent again: their sealed account copy is no longer needed.
_SETTLED_LINES = [LineStatus.PAID.value, LineStatus.OFFSET.value]


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def final_settlement(self, campaign_id: str) -> datetime | None:
        """When the campaign's recovery (the last money movement) was approved, if it was."""
        return await self.session.scalar(
            select(RecoveryRow.approved_at).where(
                RecoveryRow.campaign_id == campaign_id, RecoveryRow.status == "approved"
            )
        )

    async def purged_campaigns(self) -> set[str]:
        return set(
            await self.session.scalars(
                select(PrivacyPurgeRow.campaign_id).where(PrivacyPurgeRow.dry_run.is_(False)).distinct()
            )
        )

    async def persons_of(
        self, campaign_ids: Iterable[str] | None, *, exclude: Iterable[str] = ()
    ) -> set[str]:
        """Persons who claimed a voucher or entered a lottery in these campaigns (None: in any campaign
        but `exclude`)."""
        voucher = select(VoucherRow.person_id).distinct()
        entry = (
            select(LotteryEntryRow.person_id)
            .join(RoundRow, RoundRow.id == LotteryEntryRow.round_id)
            .distinct()
        )
        if campaign_ids is not None:
            wanted = list(campaign_ids)
            voucher = voucher.where(VoucherRow.campaign_id.in_(wanted))
            entry = entry.where(RoundRow.campaign_id.in_(wanted))
        skipped = list(exclude)
        if skipped:
            voucher = voucher.where(VoucherRow.campaign_id.not_in(skipped))
            entry = entry.where(RoundRow.campaign_id.not_in(skipped))
        return set(await self.session.scalars(voucher)) | set(await self.session.scalars(entry))

    async def residents_to_purge(self, person_ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for chunk in _chunks(person_ids):
            found.extend(
                await self.session.scalars(
                    select(ResidentRow.id).where(
                        ResidentRow.person_id.in_(chunk),
                        ResidentRow.id_number_digest.not_like(f"{PURGED_PREFIX}%"),
                    )
                )
            )
        return found

    async def erase_resident(self, resident_id: str, tombstone: str) -> None:
        await self.session.execute(
            update(ResidentRow)
            .where(ResidentRow.id == resident_id)
            .values(id_number_digest=tombstone, phone_digest=tombstone, device_digest=tombstone)
        )

    async def delete_identifiers(self, person_ids: Sequence[str]) -> int:
        deleted = 0
        for chunk in _chunks(person_ids):
            result = await self.session.execute(
                delete(PersonIdentifierRow).where(PersonIdentifierRow.person_id.in_(chunk))
            )
            deleted += result.rowcount  # type: ignore[attr-defined]
        return deleted

    async def erase_complainant_phones(self, campaign_id: str) -> int:
        result = await self.session.execute(
            update(ComplaintRow)
            .where(
                ComplaintRow.campaign_id == campaign_id, ComplaintRow.complainant_phone_digest.is_not(None)
            )
            .values(complainant_phone_digest=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def erase_claim_places(self, campaign_id: str) -> int:
        result = await self.session.execute(
            update(VoucherRow)
            .where(
                VoucherRow.campaign_id == campaign_id,
                or_(
                    VoucherRow.claim_lng.is_not(None),
                    VoucherRow.claim_lat.is_not(None),
                    VoucherRow.claim_ip_prefix.is_not(None),
                ),
            )
            .values(claim_lng=None, claim_lat=None, claim_ip_prefix=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def merchants(self, campaign_id: str) -> Sequence[MerchantRow]:
        return (
            await self.session.scalars(
                select(MerchantRow).where(MerchantRow.campaign_id == campaign_id).order_by(MerchantRow.id)
            )
        ).all()

    async def erase_settled_line_accounts(self, campaign_id: str, merchant_ids: Sequence[str]) -> int:
        erased = 0
        runs = select(SettlementRunRow.id).where(SettlementRunRow.campaign_id == campaign_id)
        for chunk in _chunks(merchant_ids):
            result = await self.session.execute(
                update(SettlementLineRow)
                .where(
                    SettlementLineRow.run_id.in_(runs),
                    SettlementLineRow.merchant_id.in_(chunk),
                    SettlementLineRow.status.in_(_SETTLED_LINES),
                    SettlementLineRow.account_sealed.is_not(None),
                )
                .values(account_sealed=None)
            )
            erased += int(result.rowcount)  # type: ignore[attr-defined]
        return erased
