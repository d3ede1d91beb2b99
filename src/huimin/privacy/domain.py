"""Personal-data purge rules (个人信息保护法 第十九条, 第四十七条; SPEC §11.10), pure.

A campaign's personal data is purged `after_days` days after its final settlement. The final
settlement is the approval of the campaign's recovery (回收: the last money movement, after every
liability was settled, SPEC §5); a campaign without an approved recovery counts from its end date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from huimin.errors import ConflictError, HuiminError

__all__ = ["PURGED_PREFIX", "PurgeReport", "not_due", "purge_due_on", "tombstone"]

PURGED_PREFIX = "purged:"


def purge_due_on(reference: date, after_days: int) -> date:
    """The first local day on which the campaign's personal data may be purged."""
    if after_days < 0:
        raise ValueError("after_days cannot be negative")
    return reference + timedelta(days=after_days)


def not_due(due: date, reference_kind: str) -> HuiminError:
    return ConflictError(
        f"the campaign's personal data may be purged from {due.isoformat()} ({reference_kind} + the retention days)",
        code="purge_not_due",
    )


def tombstone(resident_id: str) -> str:
    """What replaces a keyed hash: unique per resident (so no two purged residents look alike to a
    rule that groups by device or phone) and linked to nothing outside this database."""
    return f"{PURGED_PREFIX}{resident_id}"


@dataclass(frozen=True)
class PurgeReport:
    campaign_id: str
    reference: date  # the final settlement (or the campaign's end)
    reference_kind: str  # "final_settlement" or "campaign_end"
    due_on: date
    persons: int = 0  # natural persons whose identifiers were erased
    residents: int = 0  # app accounts whose ID, phone and device hashes were replaced
    identifiers: int = 0  # person_identifiers rows deleted
    persons_kept: int = 0  # still taking part in a campaign not purged: kept for now
    complaints: int = 0  # complainants' phone hashes erased
    claim_places: int = 0  # vouchers whose claim position and client network were erased
    merchant_phones: int = 0  # merchants' sealed contact phones erased
    bank_accounts_erased: int = 0  # merchants with nothing outstanding
    bank_accounts_kept: int = 0  # money still outstanding: the sealed account is kept
    settlement_lines: int = 0  # sealed account copies on settled payout lines erased
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "persons": self.persons,
            "residents": self.residents,
            "identifiers": self.identifiers,
            "persons_kept": self.persons_kept,
            "complaints": self.complaints,
            "claim_places": self.claim_places,
            "merchant_phones": self.merchant_phones,
            "bank_accounts_erased": self.bank_accounts_erased,
            "bank_accounts_kept": self.bank_accounts_kept,
            "settlement_lines": self.settlement_lines,
        }
