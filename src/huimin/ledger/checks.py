"""The invariants of SPEC §5 (I1–I3), checked against the ledger and the operational tables.

Each check is an async function of a `CheckContext` returning `CheckResult`s with the figures behind
them, so the CLI, the console and the demo can all show why an invariant holds or fails. Packages
that hold money state add their own checks (e.g. at most one redemption per voucher, redeemed
value against payable): a module with a `CHECKS` list, named in `CHECK_MODULES` below.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.claims.domain import round_scope
from huimin.claims.models import ClaimCounterRow, StockMovementRow, VoucherRow
from huimin.kit.money import Fen
from huimin.ledger.domain import AccountKind, account_kind, shown_balance
from huimin.ledger.repository import LedgerRepository

__all__ = [
    "CHECK_MODULES",
    "CampaignChecks",
    "Check",
    "CheckContext",
    "CheckResult",
    "Figure",
    "all_checks",
    "run_checks",
]

# Modules with a `CHECKS: list[Check]`; each money package adds its own line.
CHECK_MODULES: tuple[str, ...] = (
    "huimin.ledger.checks",
    "huimin.redemptions.checks",
    "huimin.settlement.checks",
)

_SHOWN = 20  # problems listed per check; the count says how many more


@dataclass(frozen=True)
class Figure:
    label: str
    value: int
    money: bool = True

    def text(self) -> str:
        return Fen(self.value).format() if self.money else f"{self.value:,}"


@dataclass(frozen=True)
class CheckResult:
    invariant: str  # "I1", "I2", "I3"
    name: str
    ok: bool
    figures: tuple[Figure, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass
class CampaignChecks:
    campaign_id: str
    campaign_code: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)


@dataclass
class CheckContext:
    """What the checks of one campaign share: the session, the campaign and its ledger balances."""

    session: AsyncSession
    campaign: CampaignRow
    balances: dict[str, Fen]

    def total(self, kind: AccountKind) -> Fen:
        return Fen(sum(value for key, value in self.balances.items() if account_kind(key) is kind))


Check = Callable[[CheckContext], Awaitable[list[CheckResult]]]


def _problems(items: list[str]) -> tuple[str, ...]:
    if len(items) <= _SHOWN:
        return tuple(items)
    return (*items[:_SHOWN], f"… and {len(items) - _SHOWN} more")


# The debit-normal accounts, in the order of the conservation identity.
_HOLDERS = (
    AccountKind.BUDGET,
    AccountKind.VOUCHERS,
    AccountKind.EXPIRED,
    AccountKind.PENDING,
    AccountKind.PAYABLE,
    AccountKind.CLEARING,
    AccountKind.SETTLED,
    AccountKind.RECEIVABLE,
    AccountKind.RECOVERY,
)


async def conservation(context: CheckContext) -> list[CheckResult]:
    """I1: every fen deposited is somewhere: in the budget, a voucher, a merchant's account, clearing,
    settled, owed back, or recovered; and the ledger's deposits are the approved deposits."""
    deposited = context.total(AccountKind.FUNDER)
    parts = [Figure(f"{kind.value}:*", context.total(kind)) for kind in _HOLDERS]
    held = sum(part.value for part in parts)
    approved = await LedgerRepository(context.session).approved_deposits(context.campaign.id)
    return [
        CheckResult(
            "I1",
            "conservation: deposited = budget + vouchers + expired + pending + payable + clearing + settled + receivable + recovery",
            deposited == held,
            (Figure("deposited (funder:*)", deposited), *parts, Figure("sum of the holders", held)),
        ),
        CheckResult(
            "I1",
            "ledger deposits = approved deposits",
            deposited == approved,
            (Figure("funder:* in the ledger", deposited), Figure("approved deposits", approved)),
        ),
    ]


async def vouchers_agree(context: CheckContext) -> list[CheckResult]:
    """I1: the voucher liability is the value of the vouchers in state claimed; the expired accounts
    hold the value of the expired vouchers not yet recycled."""
    query = (
        select(VoucherRow.status, func.coalesce(func.sum(VoucherRow.value_fen), 0))
        .where(VoucherRow.campaign_id == context.campaign.id, VoucherRow.status.in_(("claimed", "expired")))
        .group_by(VoucherRow.status)
    )
    by_status = {status: int(total) for status, total in await context.session.execute(query)}
    claimed, expired = by_status.get("claimed", 0), by_status.get("expired", 0)
    liability, waiting = context.total(AccountKind.VOUCHERS), context.total(AccountKind.EXPIRED)
    return [
        CheckResult(
            "I1",
            "vouchers:* = value of claimed vouchers",
            liability == claimed,
            (Figure("vouchers:*", liability), Figure("claimed vouchers", claimed)),
        ),
        CheckResult(
            "I1",
            "expired:* = value of expired vouchers not recycled",
            waiting == expired,
            (Figure("expired:*", waiting), Figure("expired vouchers", expired)),
        ),
    ]


async def transactions_balanced(context: CheckContext) -> list[CheckResult]:
    """I2: every transaction sums to zero over two or more postings. (That clearing is zero when no
    settlement run awaits the bank is checked by `huimin.settlement.checks`, which knows the runs.)"""
    repository = LedgerRepository(context.session)
    unbalanced = await repository.unbalanced(context.campaign.id)
    count = await repository.transaction_count(context.campaign.id)
    return [
        CheckResult(
            "I2",
            "every transaction sums to zero",
            not unbalanced,
            (Figure("transactions", count, money=False), Figure("unbalanced", len(unbalanced), money=False)),
            _problems(
                [f"{tx}: {legs} postings summing to {Fen(total).format()}" for tx, legs, total in unbalanced]
            ),
        ),
    ]


async def no_negative_balances(context: CheckContext) -> list[CheckResult]:
    """I3: no account below zero on its normal side. A negative budget means claims ran ahead of the
    approved deposits: claims are not blocked by a missing deposit (the stock plan is bounded by the
    budget when the campaign is loaded), so this check is where it shows."""
    negative = sorted((key, value) for key, value in context.balances.items() if value < 0)
    return [
        CheckResult(
            "I3",
            "no negative balance",
            not negative,
            (
                Figure("accounts", len(context.balances), money=False),
                Figure("negative", len(negative), money=False),
            ),
            _problems(
                [
                    f"{key} {value.format()}"
                    + (" (deposits missing?)" if account_kind(key) is AccountKind.BUDGET else "")
                    for key, value in negative
                ]
            ),
        )
    ]


async def claims_within_stock(context: CheckContext) -> list[CheckResult]:
    """I3: no round issued more than it released. Exactly: released (planned + recycled in) = issued +
    still in stock + unclaimed rest rolled over to a later round."""
    campaign_id = context.campaign.id
    released = {
        (round_id, batch_id): int(stock) + int(recycled)
        for round_id, batch_id, stock, recycled in await context.session.execute(
            select(
                RoundBatchRow.round_id, RoundBatchRow.batch_id, RoundBatchRow.stock, RoundBatchRow.recycled_in
            )
            .join(RoundRow, RoundRow.id == RoundBatchRow.round_id)
            .where(RoundRow.campaign_id == campaign_id)
        )
    }
    issued = await _grouped(
        context,
        select(VoucherRow.round_id, VoucherRow.batch_id, func.count())
        .where(VoucherRow.campaign_id == campaign_id)
        .group_by(VoucherRow.round_id, VoucherRow.batch_id),
    )
    remaining = await _grouped(
        context,
        select(StockShardRow.round_id, StockShardRow.batch_id, func.sum(StockShardRow.remaining))
        .join(RoundRow, RoundRow.id == StockShardRow.round_id)
        .where(RoundRow.campaign_id == campaign_id)
        .group_by(StockShardRow.round_id, StockShardRow.batch_id),
    )
    rolled = await _grouped(
        context,
        select(StockMovementRow.from_round_id, StockMovementRow.batch_id, func.sum(StockMovementRow.quantity))
        .join(RoundRow, RoundRow.id == StockMovementRow.from_round_id)
        .where(RoundRow.campaign_id == campaign_id, StockMovementRow.kind == "unclaimed")
        .group_by(StockMovementRow.from_round_id, StockMovementRow.batch_id),
    )
    problems = []
    for key in sorted(set(released) | set(issued)):
        out, left, moved = issued.get(key, 0), remaining.get(key, 0), rolled.get(key, 0)
        if out > released.get(key, 0) or out + left + moved != released.get(key, 0):
            problems.append(
                f"round {key[0]} batch {key[1]}: released {released.get(key, 0)}, issued {out}, "
                f"in stock {left}, rolled over {moved}"
            )
    return [
        CheckResult(
            "I3",
            "claims ≤ stock (released = issued + in stock + rolled over)",
            not problems,
            (
                Figure("released", sum(released.values()), money=False),
                Figure("issued", sum(issued.values()), money=False),
                Figure("in stock", sum(remaining.values()), money=False),
                Figure("rolled over", sum(rolled.values()), money=False),
            ),
            _problems(problems),
        )
    ]


async def _grouped(context: CheckContext, query: Select[str, str, int]) -> dict[tuple[str, str], int]:
    rows = await context.session.execute(query)
    return {(first, second): int(count) for first, second, count in rows}


async def claims_within_limits(context: CheckContext) -> list[CheckResult]:
    """I3: nobody holds more than the per-person limits (per round, per batch, per campaign), and the
    per-round claim counters agree with the vouchers issued (nothing decrements them yet)."""
    campaign = context.campaign
    limits = {
        batch_id: (per_round, per_batch)
        for batch_id, per_round, per_batch in await context.session.execute(
            select(BatchRow.id, BatchRow.per_person_per_round, BatchRow.per_person_total).where(
                BatchRow.campaign_id == campaign.id
            )
        )
    }
    held = [
        (person, round_id, batch_id, int(count))
        for person, round_id, batch_id, count in await context.session.execute(
            select(VoucherRow.person_id, VoucherRow.round_id, VoucherRow.batch_id, func.count())
            .where(VoucherRow.campaign_id == campaign.id)
            .group_by(VoucherRow.person_id, VoucherRow.round_id, VoucherRow.batch_id)
        )
    ]
    problems: list[str] = []
    per_batch: dict[tuple[str, str], int] = defaultdict(int)
    per_campaign: dict[str, int] = defaultdict(int)
    counted: dict[tuple[str, str], int] = {}
    rounds = set(
        (await context.session.scalars(select(RoundRow.id).where(RoundRow.campaign_id == campaign.id))).all()
    )
    # Per-round counters are scoped `r:<round>:b:<batch>`; keep this campaign's by their round.
    for person, scope, claimed in await context.session.execute(
        select(ClaimCounterRow.person_id, ClaimCounterRow.scope, ClaimCounterRow.claimed).where(
            ClaimCounterRow.scope.like("r:%")
        )
    ):
        if scope.split(":")[1] in rounds:
            counted[(person, scope)] = int(claimed)
    for person, round_id, batch_id, count in held:
        per_round, _ = limits[batch_id]
        if count > per_round:
            problems.append(
                f"person {person} holds {count} of batch {batch_id} in round {round_id} (limit {per_round})"
            )
        if counted.pop((person, round_scope(round_id, batch_id)), 0) != count:
            problems.append(
                f"person {person}: the claim counter of round {round_id} batch {batch_id} disagrees"
            )
        per_batch[(person, batch_id)] += count
        per_campaign[person] += count
    problems += [
        f"person {person}: counter {scope} counts {claimed} without vouchers"
        for (person, scope), claimed in counted.items()
        if claimed
    ]
    for (person, batch_id), count in sorted(per_batch.items()):
        limit = limits[batch_id][1]
        if limit is not None and count > limit:
            problems.append(f"person {person} holds {count} of batch {batch_id} (limit {limit})")
    if campaign.per_person_total is not None:
        problems += [
            f"person {person} holds {count} vouchers of the campaign (limit {campaign.per_person_total})"
            for person, count in sorted(per_campaign.items())
            if count > campaign.per_person_total
        ]
    return [
        CheckResult(
            "I3",
            "claims ≤ per-person limits, counters agree with vouchers",
            not problems,
            (
                Figure("persons", len(per_campaign), money=False),
                Figure("violations", len(problems), money=False),
            ),
            _problems(problems),
        )
    ]


CHECKS: list[Check] = [
    conservation,
    vouchers_agree,
    transactions_balanced,
    no_negative_balances,
    claims_within_stock,
    claims_within_limits,
]


def all_checks() -> list[Check]:
    found: list[Check] = []
    for name in CHECK_MODULES:
        found += importlib.import_module(name).CHECKS
    return found


async def run_checks(session: AsyncSession, campaign: CampaignRow) -> CampaignChecks:
    sums = await LedgerRepository(session).sums(campaign.id)
    context = CheckContext(
        session, campaign, {key: shown_balance(key, total) for key, total in sorted(sums.items())}
    )
    report = CampaignChecks(campaign.id, campaign.code)
    for run in all_checks():
        report.results += await run(context)
    return report
