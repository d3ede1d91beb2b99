"""Use cases of the console pages that span packages: the overview, the campaign boards, the choice of
campaign, the redemption and invoice pages, the money pages and the till. Each checks the principal
first (403 `forbidden`; a record outside the caller's scope is 404); merchant and account pages call
their own packages' services, which check for themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit import service as audit
from huimin.audit.domain import Verdict
from huimin.audit.models import AuditRecordRow, AuditSealRow
from huimin.auth.principals import Permission, Principal, Role, forbidden
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, CampaignRow
from huimin.claims import service as claims
from huimin.claims.domain import normalise_code
from huimin.claims.service import RoundBoard
from huimin.complaints.models import ComplaintRow
from huimin.console import figures
from huimin.console.figures import Figure, Scope, Series
from huimin.console.repository import (
    AuditFilter,
    AuditRepository,
    BankFileRepository,
    ConsoleRepository,
    OverviewRepository,
    RedemptionDetail,
    RedemptionFilter,
    SearchTotals,
    StaffUser,
    StatusTotals,
)
from huimin.db import unit_of_work
from huimin.errors import HuiminError, NotFound
from huimin.kit.clock import Clock, local_date
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.ledger.domain import AccountKind
from huimin.merchants import service as merchants
from huimin.merchants.models import MerchantRow
from huimin.redemptions import domain as redemption_domain
from huimin.redemptions import service as redemptions
from huimin.redemptions.domain import REFUNDABLE, RedemptionStatus, RefundShare
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.redemptions.service import Invoice, RedemptionRequest
from huimin.reports import summary
from huimin.risk.stream import WrittenEvents
from huimin.settlement import domain as settlement_domain
from huimin.settlement import service as settlement
from huimin.settlement.models import (
    BankConfirmationRow,
    BankImportRow,
    SettlementApprovalRow,
    SettlementLineRow,
    SettlementRunRow,
)

__all__ = [
    "AUDIT_READER",
    "AccountLine",
    "AuditLog",
    "CampaignBoard",
    "LedgerBoard",
    "Overview",
    "RedemptionSearch",
    "RunBoard",
    "SettlementBoard",
    "SummaryFormat",
    "TillOrder",
    "TillRefund",
    "audit_log",
    "campaign_board",
    "campaign_list",
    "campaign_summary",
    "choose_campaign",
    "complaint_assignees",
    "invoice_queue",
    "ledger_board",
    "overview",
    "redemption_detail",
    "redemption_filter",
    "search_redemptions",
    "settlement_board",
    "settlement_run",
    "till_may_refund",
    "till_merchant",
    "till_quote",
    "till_redeem",
    "till_refund",
    "till_refund_quote",
    "till_refundable",
    "voucher_code_of",
]


def choose_campaign(
    campaigns_: Sequence[CampaignRow], campaign_id: str | None, now: datetime
) -> CampaignRow | None:
    """The campaign a page is about: the one asked for (404 if unknown), else the one running today,
    else the latest to start."""
    if campaign_id:
        for campaign in campaigns_:
            if campaign.id == campaign_id:
                return campaign
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    today = local_date(now)
    running = [campaign for campaign in campaigns_ if campaign.starts_on <= today <= campaign.ends_on]
    if running:
        return max(running, key=lambda campaign: campaign.starts_on)
    return max(campaigns_, key=lambda campaign: campaign.starts_on, default=None)


@dataclass(frozen=True)
class Overview:
    campaigns: Sequence[CampaignRow]
    campaign: CampaignRow | None  # None: no campaign loaded yet
    scope: Scope | None
    claim_figures: Sequence[Figure]
    redemption_figures: Sequence[Figure]
    charts: Sequence[Series]
    subsidy_by_status: Sequence[StatusTotals] = ()


async def overview(
    session: AsyncSession, *, principal: Principal, clock: Clock, campaign_id: str | None = None
) -> Overview:
    """总览: live figures of one campaign. Claims and redemptions are city-wide aggregates (no record
    is shown); merchants are counted within the caller's jurisdiction (a county sees its own)."""
    principal.require(Permission.REPORT_READ)
    now = clock.now()
    known = await campaigns.list_campaigns(session)
    campaign = choose_campaign(known, campaign_id, now)
    if campaign is None:
        return Overview(known, None, None, (), (), ())
    scope = Scope(
        campaign_id=campaign.id,
        now=now,
        jurisdictions=frozenset({principal.jurisdiction}) if principal.jurisdiction else frozenset(),
    )
    repository = OverviewRepository(session)
    return Overview(
        campaigns=known,
        campaign=campaign,
        scope=scope,
        claim_figures=[await figure(repository, scope) for figure in figures.CLAIM_FIGURES],
        redemption_figures=[await figure(repository, scope) for figure in figures.REDEMPTION_FIGURES],
        charts=[
            await figures.claims_by_day(repository, scope),
            await figures.claims_by_district(repository, scope),
            await figures.merchants_by_status(repository, scope),
            await figures.redemptions_by_day(repository, scope),
            await figures.redemptions_by_district(repository, scope),
        ],
        subsidy_by_status=await figures.subsidy_by_status(repository, scope),
    )


async def campaign_list(session: AsyncSession, *, principal: Principal) -> Sequence[CampaignRow]:
    principal.require(Permission.CAMPAIGN_READ)
    return await campaigns.list_campaigns(session)


@dataclass(frozen=True)
class CampaignBoard:
    campaign: CampaignRow  # with funders, batches and rounds loaded
    rounds: Sequence[RoundBoard]  # each with the live remaining stock of its batches


async def campaign_board(
    session: AsyncSession, *, principal: Principal, campaign_id: str, clock: Clock
) -> CampaignBoard:
    principal.require(Permission.CAMPAIGN_READ)
    campaign = await campaigns.get_campaign(session, campaign_id=campaign_id)
    rounds = await claims.list_rounds(session, clock=clock, campaign_id=campaign_id)
    return CampaignBoard(campaign, rounds)


# Redemptions (核销查询) and invoices (发票核验)


def redemption_filter(principal: Principal, where: RedemptionFilter) -> RedemptionFilter:
    """The search's filters with the caller's scope, exactly as `redemptions.service.search` applies
    it: a county its own jurisdiction, a merchant user its own merchant."""
    principal.require(Permission.REDEMPTION_READ)
    return replace(
        where,
        jurisdictions=None if principal.jurisdiction is None else [principal.jurisdiction.value],
        merchant_id=principal.merchant_id or where.merchant_id,
    )


async def redemption_detail(
    session: AsyncSession, *, principal: Principal, redemption_id: str, permission: Permission
) -> RedemptionDetail:
    """One redemption with its refunds and events, for a reader with `permission`; another
    jurisdiction's (or another merchant's) redemption does not exist for the caller."""
    principal.require(permission)
    found = await ConsoleRepository(session).redemption(redemption_id)
    if (
        found is None
        or not principal.sees_jurisdiction(Jurisdiction(found.redemption.jurisdiction))
        or (principal.merchant_id is not None and found.redemption.merchant_id != principal.merchant_id)
    ):
        raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
    return found


@dataclass(frozen=True)
class RedemptionSearch:
    rows: Sequence[tuple[RedemptionRow, BatchRow, MerchantRow]]
    totals: SearchTotals


async def search_redemptions(
    session: AsyncSession, *, principal: Principal, where: RedemptionFilter, page: int, page_size: int
) -> RedemptionSearch:
    """核销查询: one page of `redemptions.service.search`, with the totals of every match."""
    rows = await redemptions.search(
        session,
        principal=principal,
        campaign_id=where.campaign_id,
        merchant_id=where.merchant_id,
        status=RedemptionStatus(where.status) if where.status else None,
        big_ticket=where.big_ticket,
        since=where.since,
        until=where.until,
        page=page,
        page_size=page_size,
    )
    totals = await ConsoleRepository(session).search_totals(redemption_filter(principal, where))
    return RedemptionSearch(rows, totals)


async def invoice_queue(
    session: AsyncSession, *, principal: Principal, campaign_id: str | None, page: int, page_size: int
) -> RedemptionSearch:
    """发票核验: the big-ticket purchases of the caller's jurisdiction awaiting its invoice check."""
    principal.require(Permission.INVOICE_VERIFY)
    where = RedemptionFilter(
        campaign_id=campaign_id, status=RedemptionStatus.PENDING_VERIFICATION.value, big_ticket=True
    )
    return await search_redemptions(session, principal=principal, where=where, page=page, page_size=page_size)


# Money (资金): deposits, balances, the ledger check


@dataclass(frozen=True)
class AccountLine:
    key: str
    kind: AccountKind
    owner: str  # the funder's code, the merchant's id, or "" (clearing)
    owner_name: str
    balance: Fen


@dataclass(frozen=True)
class LedgerBoard:
    kinds: Sequence[tuple[AccountKind, Fen]]  # every kind, in the order of the conservation identity
    funder_accounts: Sequence[AccountLine]
    merchant_accounts: Sequence[AccountLine]


async def ledger_board(session: AsyncSession, *, principal: Principal, campaign: CampaignRow) -> LedgerBoard:
    """Balances by account (账户余额): each kind's total, the funders' accounts, the merchants'."""
    principal.require(Permission.LEDGER_READ)
    found = await ledger.balances(session, campaign_id=campaign.id)
    funder_names = {funder.code: funder.name for funder in campaign.funders}
    lines = []
    for key, value in found.items():
        kind = ledger_domain.account_kind(key)
        lines.append(AccountLine(key, kind, key.partition(":")[2], "", value))
    merchant_ids = {line.owner for line in lines if line.kind in ledger_domain.MERCHANT_ACCOUNTS}
    names = await ConsoleRepository(session).merchant_names(merchant_ids)
    totals = {kind: Fen(0) for kind in AccountKind}
    for line in lines:
        totals[line.kind] = Fen(totals[line.kind] + line.balance)
    return LedgerBoard(
        kinds=list(totals.items()),
        funder_accounts=sorted(
            (
                replace(line, owner_name=funder_names.get(line.owner, line.owner))
                for line in lines
                if line.kind not in ledger_domain.MERCHANT_ACCOUNTS
            ),
            key=lambda line: (line.owner, list(AccountKind).index(line.kind)),
        ),
        merchant_accounts=sorted(
            (
                replace(line, owner_name=names.get(line.owner, line.owner))
                for line in lines
                if line.kind in ledger_domain.MERCHANT_ACCOUNTS
            ),
            key=lambda line: (line.owner_name, list(AccountKind).index(line.kind)),
        ),
    )


# The till (收银核销) of a merchant user


@dataclass(frozen=True)
class TillOrder:
    """What the cashier entered: the voucher, the terminal, the amounts, the invoices (big-ticket)."""

    voucher_code: str
    terminal_id: str
    order_amount: Fen
    merchant_discount: Fen
    order_ref: str | None = None
    invoice: Invoice | None = None


def form_reused() -> HuiminError:
    return HuiminError(
        "this till form was already submitted for another purchase", code="form_reused", status=422
    )


async def till_merchant(session: AsyncSession, *, principal: Principal) -> MerchantRow:
    """The merchant user's own merchant, with its registered terminals."""
    principal.require(Permission.TILL_REDEEM)
    if principal.merchant_id is None:  # pragma: no cover - a merchant principal always has one
        raise forbidden("the till is for merchant users")
    detail = await merchants.get_merchant(session, principal=principal, merchant_id=principal.merchant_id)
    return detail.merchant


def _request(merchant: MerchantRow, order: TillOrder) -> RedemptionRequest:
    return RedemptionRequest(
        voucher_code=order.voucher_code,
        merchant_id=merchant.id,
        terminal_id=order.terminal_id,
        order_amount=order.order_amount,
        merchant_discount=order.merchant_discount,
        category=Category(merchant.category),  # the till sells in the merchant's registered category
        invoice=order.invoice,
        order_ref=order.order_ref,
    )


async def till_quote(
    session: AsyncSession, *, principal: Principal, order: TillOrder, clock: Clock
) -> redemptions.Quote:
    """The preview: what the voucher would pay and the resident would pay, by the redemption rules."""
    merchant = await till_merchant(session, principal=principal)
    return await redemptions.quote(session, request=_request(merchant, order), clock=clock)


async def till_redeem(
    sessions: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    order: TillOrder,
    form_key: str,
    clock: Clock,
    written: WrittenEvents | None = None,
) -> str:
    """核销 from the till page, once per form: returns the redemption's id. `written` records the events
    the redemption writes, for the caller to publish to the risk stream once committed.

    The merchant user acts through the redemption service with its own principal: the redemption
    records the user's id as its sender (`partner_id`), the terminal chosen from the merchant's
    registered terminals, and the form's one-time key (`idempotency_key`). A second submission of
    the same form (a double click, a reload) finds the redemption the first one made and answers
    it again instead of refusing the now spent voucher; the same form with another purchase is
    refused (`form_reused`). The voucher's conditional update still guarantees one redemption.
    """
    principal.require(Permission.TILL_REDEEM)
    key = f"till:{form_key}"
    try:
        async with unit_of_work(sessions) as session:
            if written is not None:
                written.watch(session)
            earlier = await _made_by_form(session, principal=principal, key=key, clock=clock)
            if earlier is not None:
                return _same_purchase(earlier, order)
            merchant = await till_merchant(session, principal=principal)
            redeemed = await redemptions.redeem(
                session,
                partner_id=principal.actor_id,
                request=_request(merchant, order),
                clock=clock,
                idempotency_key=key,
            )
            return redeemed.redemption.id
    except HuiminError as refusal:
        if refusal.status != 409:
            raise
        # A concurrent submission of this form may have spent the voucher (or the order) first.
        async with unit_of_work(sessions) as session:
            earlier = await _made_by_form(session, principal=principal, key=key, clock=clock)
        if earlier is None:
            raise
        return _same_purchase(earlier, order)


async def _made_by_form(
    session: AsyncSession, *, principal: Principal, key: str, clock: Clock
) -> tuple[RedemptionRow, str] | None:
    assert principal.merchant_id is not None  # noqa: S101 (TILL_REDEEM is a merchant's permission)
    return await ConsoleRepository(session).redemption_by_form(
        merchant_id=principal.merchant_id, partner_id=principal.actor_id, key=key, day=local_date(clock.now())
    )


def _same_purchase(earlier: tuple[RedemptionRow, str], order: TillOrder) -> str:
    row, code = earlier
    same = (
        code == normalise_code(voucher_code_of(order.voucher_code))
        and row.order_fen == order.order_amount
        and row.merchant_discount_fen == order.merchant_discount
        and row.terminal_id == order.terminal_id.strip().upper()
    )
    if not same:
        raise form_reused()
    return row.id


def voucher_code_of(text: str) -> str:
    """The code inside what was scanned or typed: the wallet's QR payload is `HUIMIN:V1:<code>`."""
    code = text.strip()
    return code[len("HUIMIN:V1:") :] if code.upper().startswith("HUIMIN:V1:") else code


# Refunds at the till (退款): a purchase made through the till page, refunded by the user who made it


@dataclass(frozen=True)
class TillRefund:
    """What a refund form is about: the purchase, what is left to refund, and the share of `amount`."""

    detail: RedemptionDetail
    left: Fen  # the payable amount not refunded yet
    amount: Fen | None = None
    share: RefundShare | None = None


def _refund_left(row: RedemptionRow) -> Fen:
    return Fen(row.order_fen - row.merchant_discount_fen - row.refunded_fen)


def till_may_refund(principal: Principal, row: RedemptionRow) -> bool:
    """Whether the till's refund form applies: the user's own till purchase, still refundable."""
    return row.partner_id == principal.actor_id and RedemptionStatus(row.status) in REFUNDABLE


async def till_refundable(
    session: AsyncSession, *, principal: Principal, clock: Clock, days: int = 7
) -> Sequence[RedemptionRow]:
    """The user's own till purchases of the last `days` business days that may still be refunded."""
    merchant = await till_merchant(session, principal=principal)
    since = local_date(clock.now()) - timedelta(days=days - 1)
    return await ConsoleRepository(session).till_redemptions(
        merchant_id=merchant.id,
        partner_id=principal.actor_id,
        since=since,
        statuses=[status.value for status in REFUNDABLE],
        limit=50,
    )


async def till_refund_quote(
    session: AsyncSession, *, principal: Principal, redemption_id: str, amount: Fen | None = None
) -> TillRefund:
    """The refund form: the purchase (its own shop's, else 404) and, for an amount, the share that
    `redemptions.domain.refund_share` gives it (the subsidy back to the pool, the rest to the
    resident); the refusals of the refund itself (`refund_exceeds_paid`, `not_refundable`)."""
    detail = await redemption_detail(
        session, principal=principal, redemption_id=redemption_id, permission=Permission.TILL_REDEEM
    )
    row = detail.redemption
    if row.partner_id != principal.actor_id:  # the refund service refunds its sender's purchases only
        raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
    left = _refund_left(row)
    if amount is None:
        return TillRefund(detail, left)
    if RedemptionStatus(row.status) not in REFUNDABLE:
        raise redemption_domain.RedemptionRefused.not_refundable(row.status)
    share = redemption_domain.refund_share(
        redemptions.purchase_of(row),
        refunded_before=Fen(row.refunded_fen),
        subsidy_returned_before=Fen(row.subsidy_returned_fen),
        amount=amount,
    )
    return TillRefund(detail, left, amount, share)


async def till_refund(
    sessions: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    redemption_id: str,
    amount: Fen,
    form_key: str,
    clock: Clock,
    written: WrittenEvents | None = None,
) -> RefundRow:
    """退款 from the till page, once per form, through `redemptions.service.refund` with the user as the
    sender. The redemption is locked first, so a second submission of the same form (a double click)
    waits, then finds the refund the first made and answers it again; the same form with another
    amount is refused (`form_reused`). `written` as for `till_redeem`."""
    principal.require(Permission.TILL_REDEEM)
    key = f"till-refund:{form_key}"
    async with unit_of_work(sessions) as session:
        if written is not None:
            written.watch(session)
        await till_refund_quote(session, principal=principal, redemption_id=redemption_id)  # scope: 404
        repository = ConsoleRepository(session)
        await repository.lock_redemption(redemption_id)
        earlier = await repository.refund_by_key(redemption_id, key)
        if earlier is not None:
            if earlier.amount_fen != amount:
                raise form_reused()
            return earlier
        refunded = await redemptions.refund(
            session,
            partner_id=principal.actor_id,
            redemption_id=redemption_id,
            amount=amount,
            clock=clock,
            idempotency_key=key,
        )
        return refunded.refund


# Complaints (投诉): whom a complaint may be assigned to

# The roles whose users handle complaints; the complaints service checks the department's own.
_HANDLING_ROLES = (Role.CITY_ADMIN, Role.COUNTY_REVIEWER, Role.MARKET_REGULATOR, Role.OPERATOR, Role.PBOC)


async def complaint_assignees(
    session: AsyncSession, *, principal: Principal, complaint: ComplaintRow
) -> list[StaffUser]:
    """The choices of the assign form: the caller's colleagues (a department assigns within itself);
    the city commerce bureau, which supervises every complaint, chooses among every handling role.
    A county's accounts are offered only for a complaint of their jurisdiction. Whether the chosen
    user belongs to the department the complaint is routed to is the complaints service's check."""
    principal.require(Permission.COMPLAINT_HANDLE)
    roles = _HANDLING_ROLES if principal.role is Role.CITY_ADMIN else (principal.role,)
    return await ConsoleRepository(session).staff_users(
        [role.value for role in roles], complaint.jurisdiction
    )


# Settlement (结算): a campaign's runs and the bank's files, one run with the bank's answers


@dataclass(frozen=True)
class SettlementBoard:
    runs: Sequence[SettlementRunRow]  # newest business day first
    imports: Sequence[BankImportRow]  # the latest bank files, newest first
    shown_import: BankImportRow | None  # one file's rows, when asked for
    shown_rows: Sequence[BankConfirmationRow] = ()


async def settlement_board(
    session: AsyncSession, *, principal: Principal, campaign_id: str, import_id: str | None = None
) -> SettlementBoard:
    """结算批次: the campaign's runs (`settlement.read`), the bank files imported for it and, when
    asked, what became of each row of one of them. Another campaign's file is not found."""
    runs = await settlement.list_runs(session, principal=principal, campaign_id=campaign_id)
    repository = BankFileRepository(session)
    shown: BankImportRow | None = None
    rows: Sequence[BankConfirmationRow] = ()
    if import_id:
        shown = await repository.bank_import(import_id)
        if shown is None or shown.campaign_id != campaign_id:
            raise NotFound(f"no bank file {import_id!r}", code="unknown_bank_import")
        rows = await repository.confirmations(import_id=import_id)
    return SettlementBoard(
        runs=sorted(runs, key=lambda run: (run.business_day, run.id), reverse=True),
        imports=await repository.imports(campaign_id, limit=20),
        shown_import=shown,
        shown_rows=rows,
    )


@dataclass(frozen=True)
class RunBoard:
    run: SettlementRunRow
    campaign: CampaignRow
    lines: Sequence[tuple[SettlementLineRow, str]]  # each payout with its reference for the bank
    approvals: Sequence[SettlementApprovalRow]
    confirmations: Sequence[BankConfirmationRow]  # the bank's rows about this run, as imported
    merchant_names: dict[str, str]  # of the merchants whose subsidy the run holds back


async def settlement_run(session: AsyncSession, *, principal: Principal, run_id: str) -> RunBoard:
    """A run with its payouts (accounts masked), approvals and the bank's answers."""
    detail = await settlement.get_run(session, principal=principal, run_id=run_id)
    campaign = await campaigns.get_campaign(session, campaign_id=detail.run.campaign_id)
    held = [item["merchant_id"] for item in (detail.run.held or {}).get("frozen", [])]
    return RunBoard(
        run=detail.run,
        campaign=campaign,
        lines=[(line, settlement_domain.payout_reference(line.run_id, line.seq)) for line in detail.lines],
        approvals=detail.approvals,
        confirmations=await BankFileRepository(session).confirmations(run_id=detail.run.id),
        merchant_names=await ConsoleRepository(session).merchant_names(held),
    )


# The summary (活动总结) from the reports page


class SummaryFormat(StrEnum):
    HTML = "html"
    PDF = "pdf"


async def campaign_summary(
    session: AsyncSession, *, principal: Principal, campaign_id: str, fmt: SummaryFormat, clock: Clock
) -> tuple[str, bytes]:
    """The end-of-campaign summary as (file name, content). It reads the whole city, money included,
    as the report job does: for city-wide readers of reports and settlement (the city, the operator,
    finance), not a county. Recorded in the audit trail like every export."""
    principal.require(Permission.REPORT_READ)
    principal.require(Permission.SETTLEMENT_READ)
    if principal.jurisdiction is not None:  # pragma: no cover - no county role reads settlement
        raise forbidden("the summary is the whole city's")
    campaign = await campaigns.get_campaign(session, campaign_id=campaign_id)
    document = await summary.gather(session, campaign_id=campaign.id, clock=clock)
    content = (
        summary.render_html(document).encode() if fmt is SummaryFormat.HTML else summary.render_pdf(document)
    )
    await audit.record(
        session,
        principal=principal,
        action="export.report_summary",
        object_type="campaign",
        object_id=campaign.id,
        at=clock.now(),
        detail={"format": fmt.value, "bytes": len(content)},
    )
    return f"{campaign.code}-活动总结.{fmt.value}", content


# The audit log viewer (审计日志)

# Who reads the trail: it has no permission of its own yet. The city commerce bureau's account
# administrator, who manages the accounts whose sign-ins and changes it records, reviews it.
AUDIT_READER = Permission.USER_MANAGE


@dataclass(frozen=True)
class AuditLog:
    rows: Sequence[tuple[AuditRecordRow, int | None]]  # newest first, each with its seal's number
    total: int
    actions: Sequence[str]
    last_seal: AuditSealRow | None
    unsealed: int
    verdict: Verdict | None  # the whole chain checked, when asked for


async def audit_log(
    session: AsyncSession,
    *,
    principal: Principal,
    where: AuditFilter,
    page: int,
    page_size: int,
    verify: bool,
    clock: Clock,
) -> AuditLog:
    """One page of the trail, newest first, with the chain's last seal; `verify` walks the whole chain
    (`audit.service.verify_chain`, as `huimin audit verify` does). Read-only."""
    principal.require(AUDIT_READER)
    repository = AuditRepository(session)
    rows, total = await repository.search(where, offset=(page - 1) * page_size, limit=page_size)
    return AuditLog(
        rows=rows,
        total=total,
        actions=await repository.actions(),
        last_seal=await repository.last_seal(),
        unsealed=await repository.unsealed(),
        verdict=await audit.verify_chain(session, clock=clock) if verify else None,
    )
