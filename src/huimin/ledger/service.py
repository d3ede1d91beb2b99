"""Use cases of the ledger: posting in the caller's transaction, balances, deposits, the invariant check.

Posting never commits: it writes in the unit of work of the state change it reflects (a claim, an
expiry, an approval), so the state and its money move together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow, FunderRow
from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.money import Fen
from huimin.ledger import checks, domain
from huimin.ledger.domain import FundingSplit, Transaction
from huimin.ledger.models import DepositRow
from huimin.ledger.repository import LedgerRepository

__all__ = [
    "Deposit",
    "approve_deposit",
    "balance",
    "balances",
    "check",
    "funding_split",
    "funding_splits",
    "list_deposits",
    "post",
    "post_many",
    "request_deposit",
]


async def post(session: AsyncSession, *, campaign_id: str, transaction: Transaction, at: datetime) -> str:
    """Write one balanced transaction; returns its id. Posting the same (kind, reference) again writes
    nothing and returns the id of the first, so a retried job or request cannot post twice (I4)."""
    [transaction_id] = await post_many(session, campaign_id=campaign_id, transactions=[transaction], at=at)
    return transaction_id


async def post_many(
    session: AsyncSession, *, campaign_id: str, transactions: Sequence[Transaction], at: datetime
) -> list[str]:
    """Write many transactions of one campaign in two statements (the transaction rows, the postings);
    returns their ids in order. Idempotent per (kind, reference) like `post`."""
    if not transactions:
        return []
    ids = await LedgerRepository(session).write(campaign_id, transactions, at)
    return [ids[(str(tx.kind), tx.reference)] for tx in transactions]


async def balances(session: AsyncSession, *, campaign_id: str) -> dict[str, Fen]:
    """Every account of a campaign that has postings, with its balance as shown (normal side positive)."""
    sums = await LedgerRepository(session).sums(campaign_id)
    return {key: domain.shown_balance(key, total) for key, total in sorted(sums.items())}


async def balance(session: AsyncSession, *, campaign_id: str, account: str) -> Fen:
    domain.account_kind(account)  # refuse a malformed key rather than answer 0
    sums = await LedgerRepository(session).sums(campaign_id, account)
    return domain.shown_balance(account, sums.get(account, 0))


async def funding_splits(session: AsyncSession, *, batch_ids: Sequence[str]) -> dict[str, FundingSplit]:
    """The funding split of each batch. A split is written with its batch when the campaign is loaded and
    never changes, so each process keeps the splits it has read, by batch id: every claim and redemption
    posts by its batch's split, and reading it cost a query each time. Batch ids are random and never
    reused, so a kept split cannot be mistaken for another database's or a rolled-back load's."""
    wanted = sorted(set(batch_ids))
    missing = [batch_id for batch_id in wanted if batch_id not in _SPLITS]
    if missing:
        found = await LedgerRepository(session).funding_splits(missing)
        unknown = set(missing) - set(found)
        if unknown:
            raise domain.LedgerError(f"batches without a funding split: {', '.join(sorted(unknown))}")
        if len(_SPLITS) + len(found) > _SPLITS_KEPT:
            _SPLITS.clear()
        _SPLITS.update(found)
    return {batch_id: _SPLITS[batch_id] for batch_id in wanted}


_SPLITS: dict[str, FundingSplit] = {}
_SPLITS_KEPT = 10_000  # a campaign has a handful of batches; beyond this many, start again


async def funding_split(session: AsyncSession, *, batch_id: str) -> FundingSplit:
    return (await funding_splits(session, batch_ids=[batch_id]))[batch_id]


@dataclass(frozen=True)
class Deposit:
    row: DepositRow
    funder_code: str


async def request_deposit(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    funder_code: str,
    amount: Fen,
    clock: Clock,
    note: str = "",
) -> Deposit:
    """Record a funder's deposit into the budget (资金拨付), to be approved by the finance bureau."""
    principal.require(Permission.LEDGER_DEPOSIT)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput(
            [Problem("amount", "a deposit is a positive amount of yuan")], code="invalid_deposit"
        )
    if await session.get(CampaignRow, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    found = await LedgerRepository(session).funder(campaign_id, funder_code)
    if found is None:
        raise NotFound(f"no funder {funder_code!r} in this campaign", code="unknown_funder")
    row = DepositRow(
        id=new_id("dep"),
        campaign_id=campaign_id,
        funder_id=found.id,
        amount_fen=int(amount),
        note=note.strip(),
        status="requested",
        requested_by=principal.actor_id,
        requested_by_name=principal.name or principal.actor_id,
        requested_by_role=principal.role.value,
        requested_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="ledger.deposit_requested",
        object_type="deposit",
        object_id=row.id,
        at=row.requested_at,
        detail={"funder": found.code, "amount_fen": row.amount_fen},
    )
    return Deposit(row, found.code)


async def approve_deposit(
    session: AsyncSession, *, principal: Principal, deposit_id: str, clock: Clock
) -> Deposit:
    """The finance bureau approves a recorded deposit: it is posted (Dr budget / Cr funder) in the same
    transaction. Whoever recorded it cannot approve it (maker-checker, also a database CHECK)."""
    principal.require(Permission.LEDGER_APPROVE)
    repository = LedgerRepository(session)
    row = await repository.deposit_for_update(deposit_id)
    if row is None:
        raise NotFound(f"no deposit {deposit_id!r}", code="unknown_deposit")
    if row.status != "requested":
        raise ConflictError(f"deposit {deposit_id} is already {row.status}", code="deposit_not_requested")
    if row.requested_by == principal.actor_id:
        raise HuiminError(
            "a deposit is approved by someone other than the person who recorded it",
            code="maker_checker",
            status=403,
        )
    funder = await session.get(FunderRow, row.funder_id)
    if funder is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"no funder {row.funder_id!r}", code="unknown_funder")
    now = clock.now()
    transaction_id = await post(
        session,
        campaign_id=row.campaign_id,
        transaction=domain.deposit(row.id, funder_code=funder.code, amount=row.amount_fen),
        at=now,
    )
    row.status = "approved"
    row.approved_by = principal.actor_id
    row.approved_by_name = principal.name or principal.actor_id
    row.approved_at = now
    row.transaction_id = transaction_id
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="ledger.deposit_approved",
        object_type="deposit",
        object_id=row.id,
        at=now,
        detail={"funder": funder.code, "amount_fen": row.amount_fen, "transaction_id": transaction_id},
    )
    return Deposit(row, funder.code)


async def list_deposits(session: AsyncSession, *, principal: Principal, campaign_id: str) -> list[Deposit]:
    principal.require(Permission.LEDGER_READ)
    return [Deposit(row, code) for row, code in await LedgerRepository(session).deposits(campaign_id)]


async def check(
    session: AsyncSession, *, principal: Principal, campaign_id: str | None = None
) -> list[checks.CampaignChecks]:
    """Verify the invariants I1–I3 of SPEC §5 for one campaign or all, with the figures behind each."""
    principal.require(Permission.LEDGER_READ)
    query = select(CampaignRow).order_by(CampaignRow.code)
    if campaign_id is not None:
        query = query.where(CampaignRow.id == campaign_id)
    campaigns = (await session.scalars(query)).all()
    if campaign_id is not None and not campaigns:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return [await checks.run_checks(session, campaign) for campaign in campaigns]
