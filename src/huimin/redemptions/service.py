"""Use cases of redemption: the till's redemption, refunds, the county's invoice verification, search.

Each runs in the caller's one transaction: the voucher's state change, the redemption, the counters,
the event and the ledger postings commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.domain import Batch, RefundPolicy
from huimin.campaigns.models import BatchRow
from huimin.claims.domain import VoucherStatus, normalise_code
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.errors import HuiminError
from huimin.kit.clock import Clock, local_date
from huimin.kit.ids import new_id
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.ledger import domain as ledger
from huimin.ledger import service as ledger_service
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.models import MerchantRow, MerchantTerminalRow
from huimin.redemptions import domain
from huimin.redemptions.domain import HOLDS_VOUCHER, REFUNDABLE, Purchase, RedemptionRefused, RedemptionStatus
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow, RefundRow
from huimin.redemptions.repository import RedemptionRepository
from huimin.settlement.domain import SettlementRefused
from huimin.settlement.receivables import record_refund_receivable, refuse_refund_in_settlement

__all__ = [
    "Invoice",
    "Quote",
    "Redeemed",
    "RedemptionRequest",
    "Refunded",
    "SpendableVoucher",
    "TillMerchant",
    "TillTerminal",
    "check_spend",
    "get_redemption",
    "quote",
    "redeem",
    "refund",
    "refuse_unless_spendable",
    "search",
    "verify",
]

_HOLDING = sorted(status.value for status in HOLDS_VOUCHER)


@dataclass(frozen=True)
class Invoice:
    """The invoices of a big-ticket purchase (cars, appliances; seed 六(八))."""

    sales_invoice_no: str
    sales_invoice_fen: Fen
    tax_invoice_no: str


@dataclass(frozen=True)
class RedemptionRequest:
    voucher_code: str
    merchant_id: str
    terminal_id: str
    order_amount: Fen
    merchant_discount: Fen
    category: Category
    invoice: Invoice | None = None
    order_ref: str | None = None


@dataclass(frozen=True)
class Redeemed:
    redemption: RedemptionRow
    voucher: VoucherRow
    batch: BatchRow


@dataclass(frozen=True)
class _Checked:
    voucher: VoucherRow
    batch_row: BatchRow
    batch: Batch
    merchant: MerchantRow
    terminal: MerchantTerminalRow
    purchase: Purchase


async def _checked(repository: RedemptionRepository, request: RedemptionRequest, now: datetime) -> _Checked:
    """Every refusal of a redemption that needs no write, and the purchase's arithmetic: shared by
    `redeem` and the till's preview `quote`."""
    found = await repository.spend_context(
        normalise_code(request.voucher_code), request.merchant_id, request.terminal_id.strip().upper()
    )
    if found is None:
        raise RedemptionRefused.unknown_voucher()
    voucher, batch_row, merchant, terminal = found
    batch = batch_row.terms()
    purchase, merchant, terminal = check_spend(request, voucher, batch, merchant, terminal, now)
    invoice = request.invoice
    if batch.big_ticket and invoice is not None:
        reused = await repository.invoice_in_use(
            voucher.campaign_id, invoice.sales_invoice_no, invoice.tax_invoice_no
        )
        if reused is not None:
            raise RedemptionRefused.invoice_reused(reused)
    if request.order_ref is not None and await repository.order_in_use(
        merchant.id, request.order_ref, _HOLDING
    ):
        raise RedemptionRefused.one_voucher_per_purchase(request.order_ref)
    return _Checked(voucher, batch_row, batch, merchant, terminal, purchase)


class SpendableVoucher(Protocol):
    """What the till's checks read of a voucher: its row, or the batched path's copy of its columns."""

    @property
    def campaign_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def valid_until(self) -> datetime: ...


class TillMerchant(Protocol):
    """What the till's checks read of a merchant."""

    @property
    def id(self) -> str: ...

    @property
    def campaign_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def jurisdiction(self) -> str: ...

    @property
    def merchant_class(self) -> str: ...


class TillTerminal(Protocol):
    """What the till's checks read of a terminal."""

    @property
    def merchant_id(self) -> str: ...


M = TypeVar("M", bound=TillMerchant)
T = TypeVar("T", bound=TillTerminal)


def check_spend(
    request: RedemptionRequest,
    voucher: SpendableVoucher,
    batch: Batch,
    merchant: M | None,
    terminal: T | None,
    now: datetime,
) -> tuple[Purchase, M, T]:
    """The refusals of a redemption that its voucher, batch terms, merchant and terminal decide, and the
    purchase's arithmetic, with the merchant and terminal now known to exist. The caller has looked
    them up (the terminal of the till's number in the voucher's campaign) and checks what needs other
    rows (invoices, orders, daily caps)."""
    if merchant is None or merchant.campaign_id != voucher.campaign_id:
        raise RedemptionRefused.unknown_merchant(request.merchant_id)
    if terminal is None or terminal.merchant_id != merchant.id:
        raise RedemptionRefused.unknown_terminal(request.terminal_id)
    if merchant.status != MerchantStatus.ACTIVE.value:
        raise RedemptionRefused.merchant_not_active(merchant.status)
    refuse_unless_spendable(voucher, now)
    domain.admits(
        batch,
        category=request.category,
        merchant_category=Category(merchant.category),
        jurisdiction=Jurisdiction(merchant.jurisdiction),
        merchant_class=MerchantClass(merchant.merchant_class),
    )
    purchase = domain.price(batch, order=request.order_amount, merchant_discount=request.merchant_discount)
    invoice = request.invoice
    if batch.big_ticket:
        if invoice is None:
            raise RedemptionRefused.invoice_required()
        if invoice.sales_invoice_fen != purchase.payable:
            raise RedemptionRefused.invoice_mismatch(invoice.sales_invoice_fen, purchase.payable)
    return purchase, merchant, terminal


async def redeem(
    session: AsyncSession,
    *,
    partner_id: str,
    request: RedemptionRequest,
    clock: Clock,
    idempotency_key: str | None = None,
) -> Redeemed:
    """核销: spend a voucher on a purchase at an active merchant's till, or refuse with a code."""
    repository = RedemptionRepository(session)
    now = clock.now()
    checked = await _checked(repository, request, now)
    voucher, batch_row, batch, merchant, terminal, purchase = (
        checked.voucher,
        checked.batch_row,
        checked.batch,
        checked.merchant,
        checked.terminal,
        checked.purchase,
    )
    invoice = request.invoice

    day = local_date(now)
    if batch.per_merchant_daily is not None and not await repository.count_day(
        merchant.id, batch_row.id, day, batch.per_merchant_daily
    ):
        raise RedemptionRefused.merchant_daily_cap(batch.per_merchant_daily)
    # The voucher last among the checks and first among the writes that matter: whoever changes its
    # status spends it; a concurrent till finds it no longer claimed.
    if not await repository.take_voucher(voucher.id, now):
        await session.refresh(voucher)
        refuse_unless_spendable(voucher, now)
        raise RedemptionRefused.voucher_used()  # pragma: no cover - refused just above

    status = RedemptionStatus.PENDING_VERIFICATION if batch.big_ticket else RedemptionStatus.CONFIRMED
    redemption = RedemptionRow(
        id=new_id("rdm"),
        campaign_id=voucher.campaign_id,
        voucher_id=voucher.id,
        batch_id=batch_row.id,
        person_id=voucher.person_id,
        merchant_id=merchant.id,
        terminal_id=terminal.terminal_id,
        partner_id=partner_id,
        jurisdiction=merchant.jurisdiction,
        category=request.category.value,
        status=status.value,
        order_fen=int(purchase.order),
        merchant_discount_fen=int(purchase.merchant_discount),
        voucher_value_fen=voucher.value_fen,
        subsidy_fen=int(purchase.subsidy),
        refunded_fen=0,
        subsidy_returned_fen=0,
        order_ref=request.order_ref,
        sales_invoice_no=invoice.sales_invoice_no if invoice else None,
        sales_invoice_fen=int(invoice.sales_invoice_fen) if invoice else None,
        tax_invoice_no=invoice.tax_invoice_no if invoice else None,
        redeemed_at=now,
        business_day=day,
        idempotency_key=idempotency_key,
    )
    session.add(redemption)
    session.add(VoucherEventRow(voucher_id=voucher.id, kind="redeemed", value_fen=voucher.value_fen, at=now))
    session.add(_event("redeemed", redemption, amount=purchase.payable, subsidy=purchase.subsidy, at=now))
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:  # a concurrent redemption took the invoice or the order first
        raise _integrity_refusal(error, request) from None
    await ledger_service.post(
        session,
        campaign_id=voucher.campaign_id,
        transaction=ledger.redeem(
            redemption.id,
            value=voucher.value_fen,
            subsidy=int(purchase.subsidy),
            funding=await ledger_service.funding_split(session, batch_id=batch_row.id),
            merchant_id=merchant.id,
            big_ticket=batch.big_ticket,
        ),
        at=now,
    )
    set_committed_value(voucher, "status", VoucherStatus.REDEEMED.value)  # as the UPDATE left it
    return Redeemed(redemption, voucher, batch_row)


def refuse_unless_spendable(voucher: SpendableVoucher, now: datetime) -> None:
    match VoucherStatus(voucher.status):
        case VoucherStatus.CLAIMED:
            if voucher.valid_until <= now:
                raise RedemptionRefused.voucher_expired(voucher.valid_until)
        case VoucherStatus.REDEEMED | VoucherStatus.SETTLED | VoucherStatus.REVERSED:
            raise RedemptionRefused.voucher_used()
        case VoucherStatus.REVOKED:
            raise RedemptionRefused.voucher_revoked()
        case VoucherStatus.EXPIRED | VoucherStatus.RECYCLED:
            raise RedemptionRefused.voucher_expired(voucher.valid_until)


def _integrity_refusal(error: IntegrityError, request: RedemptionRequest) -> HuiminError:
    text = str(error.orig)
    if "invoice" in text and request.invoice is not None:
        return RedemptionRefused.invoice_reused(request.invoice.sales_invoice_no)
    if "order" in text and request.order_ref is not None:
        return RedemptionRefused.one_voucher_per_purchase(request.order_ref)
    return RedemptionRefused.voucher_used()


def _event(
    kind: str, redemption: RedemptionRow, *, amount: Fen, subsidy: Fen, at: object
) -> RedemptionEventRow:
    return RedemptionEventRow(
        kind=kind,
        campaign_id=redemption.campaign_id,
        redemption_id=redemption.id,
        merchant_id=redemption.merchant_id,
        person_id=redemption.person_id,
        amount_fen=int(amount),
        subsidy_fen=int(subsidy),
        at=at,
    )


def purchase_of(redemption: RedemptionRow) -> Purchase:
    return Purchase(
        order=Fen(redemption.order_fen),
        merchant_discount=Fen(redemption.merchant_discount_fen),
        subsidy=Fen(redemption.subsidy_fen),
    )


@dataclass(frozen=True)
class Refunded:
    refund: RefundRow
    redemption: RedemptionRow


async def refund(
    session: AsyncSession,
    *,
    partner_id: str,
    redemption_id: str,
    amount: Fen,
    clock: Clock,
    idempotency_key: str | None = None,
) -> Refunded:
    """退款: give back part or all of a purchase. The subsidy returns to the pool in proportion; a full
    refund within the voucher's validity restores the voucher when the batch's refund policy says so."""
    repository = RedemptionRepository(session)
    redemption = await repository.for_update(redemption_id)
    if redemption is None or redemption.partner_id != partner_id:
        raise RedemptionRefused.unknown_redemption(redemption_id)
    if RedemptionStatus(redemption.status) not in REFUNDABLE:
        raise RedemptionRefused.not_refundable(redemption.status)
    await refuse_refund_in_settlement(session, redemption)
    merchant = await repository.merchant(redemption.merchant_id)
    if merchant is not None and merchant.status == MerchantStatus.EXPELLED.value:
        raise SettlementRefused.merchant_expelled()
    # A settled redemption's subsidy is no longer in payable:m: what its refund returns is owed back.
    was_settled = redemption.status == RedemptionStatus.SETTLED.value
    found = await repository.with_voucher(redemption_id)
    if found is None:  # pragma: no cover - a redemption always has its voucher (foreign key)
        raise RedemptionRefused.unknown_redemption(redemption_id)
    _, voucher, batch_row = found
    now = clock.now()
    share = domain.refund_share(
        purchase_of(redemption),
        refunded_before=Fen(redemption.refunded_fen),
        subsidy_returned_before=Fen(redemption.subsidy_returned_fen),
        amount=amount,
    )
    restore = (
        share.completes
        and batch_row.refund_policy == RefundPolicy.RESTORE_ON_FULL_REFUND.value
        and now < voucher.valid_until
        and redemption.status == RedemptionStatus.CONFIRMED.value  # a settled purchase is not re-issued
    )
    redemption.refunded_fen += int(amount)
    redemption.subsidy_returned_fen += int(share.subsidy_returned)
    if share.completes:
        redemption.status = RedemptionStatus.REFUNDED.value
        target = VoucherStatus.CLAIMED if restore else VoucherStatus.REVERSED
        changed = await repository.set_voucher_status(
            voucher.id, from_=VoucherStatus(voucher.status), to=target
        )
        if not changed:  # pragma: no cover - the redemption row lock serialises refunds
            raise HuiminError(
                "the voucher changed meanwhile; retry", code="conflict", status=409, final=False
            )
        session.add(
            VoucherEventRow(voucher_id=voucher.id, kind=target.value, value_fen=voucher.value_fen, at=now)
        )
    row = RefundRow(
        id=new_id("rfd"),
        redemption_id=redemption.id,
        amount_fen=int(amount),
        subsidy_returned_fen=int(share.subsidy_returned),
        resident_refund_fen=int(share.resident_refund),
        voucher_restored=restore,
        partner_id=partner_id,
        refunded_at=now,
        business_day=local_date(now),
        idempotency_key=idempotency_key,
    )
    session.add(row)
    session.add(_event("refunded", redemption, amount=amount, subsidy=Fen(-share.subsidy_returned), at=now))
    await session.flush()
    if share.subsidy_returned > 0:  # a sliver of a refund may return less than a fen of subsidy
        # With the voucher restored, this last refund returns all the subsidy still out: earlier partial
        # refunds already gave the budget their share.
        outstanding = redemption.subsidy_fen - (redemption.subsidy_returned_fen - int(share.subsidy_returned))
        transaction = ledger.refund(
            row.id,
            value=redemption.voucher_value_fen,
            subsidy=outstanding if restore else redemption.subsidy_fen,
            returned=int(share.subsidy_returned),
            restore=restore,
            funding=await ledger_service.funding_split(session, batch_id=redemption.batch_id),
            merchant_id=redemption.merchant_id,
            payable_available=0
            if was_settled
            else int(
                await ledger_service.balance(
                    session,
                    campaign_id=redemption.campaign_id,
                    account=ledger.payable(redemption.merchant_id),
                )
            ),
        )
        await ledger_service.post(
            session, campaign_id=redemption.campaign_id, transaction=transaction, at=now
        )
        owed = int(transaction.total(ledger.receivable(redemption.merchant_id)))
        if owed > 0:
            await record_refund_receivable(
                session, refund_id=row.id, redemption=redemption, amount=owed, at=now
            )
    return Refunded(row, redemption)


async def get_redemption(session: AsyncSession, *, partner_id: str, redemption_id: str) -> RedemptionRow:
    """A redemption as its terminal partner sees it; another partner's redemption does not exist."""
    row = await session.get(RedemptionRow, redemption_id)
    if row is None or row.partner_id != partner_id:
        raise RedemptionRefused.unknown_redemption(redemption_id)
    return row


async def verify(
    session: AsyncSession,
    *,
    principal: Principal,
    redemption_id: str,
    approve: bool,
    note: str,
    clock: Clock,
) -> RedemptionRow:
    """The county checks a big-ticket purchase's invoices (seed 六(八)): verified, the subsidy becomes
    payable; rejected, the redemption is reversed and the voucher returns to the resident."""
    principal.require(Permission.INVOICE_VERIFY)
    repository = RedemptionRepository(session)
    redemption = await repository.for_update(redemption_id)
    if redemption is None:
        raise RedemptionRefused.unknown_redemption(redemption_id)
    principal.require_scope(Jurisdiction(redemption.jurisdiction), what="redemption", object_id=redemption_id)
    if redemption.status != RedemptionStatus.PENDING_VERIFICATION.value:
        raise RedemptionRefused.not_pending(redemption.status)
    if not approve and not note.strip():
        raise HuiminError("a rejection needs a reason", code="reason_required", status=422)
    now = clock.now()
    redemption.verified_at = now
    redemption.verified_by = principal.actor_id
    redemption.verification_note = note.strip()
    subsidy = Fen(redemption.subsidy_fen)
    if approve:
        redemption.status = RedemptionStatus.CONFIRMED.value
        session.add(_event("verified", redemption, amount=subsidy, subsidy=Fen(0), at=now))
        posting = ledger.verify(redemption.id, subsidy=int(subsidy), merchant_id=redemption.merchant_id)
    else:
        redemption.status = RedemptionStatus.REJECTED.value
        await repository.set_voucher_status(
            redemption.voucher_id, from_=VoucherStatus.REDEEMED, to=VoucherStatus.CLAIMED
        )
        session.add(
            VoucherEventRow(
                voucher_id=redemption.voucher_id,
                kind="claimed",
                value_fen=redemption.voucher_value_fen,
                at=now,
            )
        )
        session.add(_event("rejected", redemption, amount=subsidy, subsidy=Fen(-subsidy), at=now))
        posting = ledger.reject_invoice(
            redemption.id,
            value=redemption.voucher_value_fen,
            subsidy=int(subsidy),
            funding=await ledger_service.funding_split(session, batch_id=redemption.batch_id),
            merchant_id=redemption.merchant_id,
        )
    await session.flush()
    await ledger_service.post(session, campaign_id=redemption.campaign_id, transaction=posting, at=now)
    await audit.record(
        session,
        principal=principal,
        action="redemption.invoice_verified" if approve else "redemption.invoice_rejected",
        object_type="redemption",
        object_id=redemption.id,
        at=now,
        detail={"subsidy_fen": redemption.subsidy_fen, "note": redemption.verification_note},
    )
    return redemption


async def search(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    status: RedemptionStatus | None = None,
    big_ticket: bool | None = None,
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Sequence[tuple[RedemptionRow, BatchRow, MerchantRow]]:
    """Redemptions the principal may see: a county its own jurisdiction, a merchant its own."""
    principal.require(Permission.REDEMPTION_READ)
    if principal.merchant_id is not None:
        merchant_id = principal.merchant_id
    jurisdictions = [principal.jurisdiction.value] if principal.jurisdiction is not None else None
    return await RedemptionRepository(session).search(
        campaign_id=campaign_id,
        jurisdictions=jurisdictions,
        merchant_id=merchant_id,
        status=status.value if status else None,
        big_ticket=big_ticket,
        since=since,
        until=until,
        offset=(page - 1) * page_size,
        limit=page_size,
    )


@dataclass(frozen=True)
class Quote:
    """What a redemption would do, before the cashier confirms it (the till page's preview)."""

    purchase: Purchase
    batch: BatchRow
    voucher_valid_until: datetime


async def quote(session: AsyncSession, *, request: RedemptionRequest, clock: Clock) -> Quote:
    """预览: the refusals and the arithmetic of `redeem`, without a write. `redeem` checks everything
    again when the cashier confirms (the voucher may be spent meanwhile); only the per-merchant daily
    cap, a counter that `redeem` increments, is left to it."""
    checked = await _checked(RedemptionRepository(session), request, clock.now())
    return Quote(checked.purchase, checked.batch_row, checked.voucher.valid_until)
