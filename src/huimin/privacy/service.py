"""The personal-data purge (`huimin privacy purge`): what a finished campaign no longer needs is erased,
what audit and accounts need is kept.

Erased:
- residents (app accounts) of persons who took part in this campaign and in no campaign that is not
  purged yet: the keyed hashes of the ID number, the phone and the device are replaced by a tombstone
  unique to the account; the person's identifier rows (the hashes that link accounts to one natural
  person) are deleted;
- complaints of the campaign: the complainant's phone hash;
- vouchers of the campaign: where they were claimed (the ~100 m position and the client's network the
  location-spoofing rule reads);
- merchants of the campaign: the sealed contact phone; the sealed settlement account and the sealed
  copies on settled payout lines, once the ledger shows nothing outstanding for the merchant
  (pending, payable, receivable all zero). A merchant that still owes or is owed keeps them.

Kept: every masked form (138****5678), ids and the history that audit and the ledger hold (vouchers,
redemptions, postings, transitions, the audit trail), the merchants' names and credit codes (public
business data), union member lists (the trade union's, not the campaign's).

The purge runs in one transaction, writes a `privacy_purges` row and an audit record with its counts.
Running it again erases nothing more.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow
from huimin.errors import NotFound
from huimin.kit.clock import Clock, local_date
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.merchants.service import MerchantSealer
from huimin.privacy import domain
from huimin.privacy.domain import PurgeReport
from huimin.privacy.models import PrivacyPurgeRow
from huimin.privacy.repository import PrivacyRepository

__all__ = ["purge"]


async def purge(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    after_days: int,
    sealer: MerchantSealer,
    clock: Clock,
    dry_run: bool = False,
) -> PurgeReport:
    """Purge a campaign's personal data, refused (409 `purge_not_due`) before `after_days` days past
    its final settlement. `dry_run` counts what would be erased and changes nothing but its record."""
    principal.require(Permission.PRIVACY_PURGE)
    campaign = await session.get(CampaignRow, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    repository = PrivacyRepository(session)
    settled_at = await repository.final_settlement(campaign_id)
    reference, reference_kind = (
        (local_date(settled_at), "final_settlement")
        if settled_at is not None
        else (campaign.ends_on, "campaign_end")
    )
    due = domain.purge_due_on(reference, after_days)
    now = clock.now()
    if local_date(now) < due:
        raise domain.not_due(due, reference_kind.replace("_", " "))

    # Persons: those of this campaign, except who also takes part in a campaign not purged yet.
    done = await repository.purged_campaigns() | {campaign_id}
    persons = await repository.persons_of([campaign_id])
    elsewhere = await repository.persons_of(None, exclude=done)
    kept = persons & elsewhere
    erasable = sorted(persons - kept)
    residents = await repository.residents_to_purge(erasable)

    balances = await ledger.balances(session, campaign_id=campaign_id)
    merchants = await repository.merchants(campaign_id)
    settled_merchants: list[str] = []
    phones = kept_accounts = erased_accounts = 0
    for merchant in merchants:
        if merchant.contact_phone_sealed is not None:
            phones += 1
            if not dry_run:
                merchant.contact_phone_sealed = None
        outstanding = any(
            balances.get(key, 0) != 0
            for key in (
                ledger_domain.pending(merchant.id),
                ledger_domain.payable(merchant.id),
                ledger_domain.receivable(merchant.id),
            )
        )
        if outstanding:
            if merchant.bank_account_sealed is not None:
                kept_accounts += 1
            continue
        settled_merchants.append(merchant.id)
        if merchant.bank_account_sealed is not None and sealer.bank_account.open(
            merchant.bank_account_sealed
        ):
            erased_accounts += 1
            if not dry_run:
                # An applied merchant must hold a sealed account (a CHECK of the merchants table): the
                # sealed empty string stands for "erased"; the masked form stays for the record.
                merchant.bank_account_sealed = sealer.bank_account.seal("")

    identifiers = complaints = lines = places = 0
    if not dry_run:
        for resident_id in residents:
            await repository.erase_resident(resident_id, domain.tombstone(resident_id))
        identifiers = await repository.delete_identifiers(erasable)
        complaints = await repository.erase_complainant_phones(campaign_id)
        places = await repository.erase_claim_places(campaign_id)
        lines = await repository.erase_settled_line_accounts(campaign_id, settled_merchants)
    report = PurgeReport(
        campaign_id=campaign_id,
        reference=reference,
        reference_kind=reference_kind,
        due_on=due,
        persons=len(erasable),
        residents=len(residents),
        identifiers=identifiers,
        persons_kept=len(kept),
        complaints=complaints,
        claim_places=places,
        merchant_phones=phones,
        bank_accounts_erased=erased_accounts,
        bank_accounts_kept=kept_accounts,
        settlement_lines=lines,
        dry_run=dry_run,
    )
    repository.add(
        PrivacyPurgeRow(
            campaign_id=campaign_id,
            reference=reference,
            reference_kind=reference_kind,
            after_days=after_days,
            dry_run=dry_run,
            counts=report.counts(),
            actor_id=principal.actor_id,
            at=now,
        )
    )
    await audit.record(
        session,
        principal=principal,
        action="privacy.purge_dry_run" if dry_run else "privacy.purge",
        object_type="campaign",
        object_id=campaign_id,
        at=now,
        detail={
            "reference": reference.isoformat(),
            "reference_kind": reference_kind,
            "after_days": after_days,
            **report.counts(),
        },
    )
    await session.flush()
    return report
