"""The till page (收银核销) of a signed-in merchant user: the cashier scans or types the voucher code,
enters the order amount and the shop's own discount, sees what the voucher pays and what the
resident pays (computed by the server with the redemption rules), and confirms.

Each form carries a one-time key (`form_key`): submitting the same form twice (a double click, a
reload) answers the first redemption's receipt again instead of a refusal; see `service.till_redeem`.
Refusals show the Chinese message of each refusal code.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.i18n import Translator
from huimin.console.service import TillOrder
from huimin.console.web import CONSOLE_PREFIX, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError
from huimin.kit.money import Fen, MoneyFormatError
from huimin.kit.terms import Category
from huimin.merchants.models import MerchantRow
from huimin.redemptions.service import Invoice, Quote
from huimin.risk.stream import WrittenEvents

__all__ = ["REFUND_REFUSAL_CODES", "REFUSAL_CODES", "router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/till", include_in_schema=False)

_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_FEN = 100_000_000_00  # a hundred million yuan: far above any purchase, far below overflow
BIG_TICKET_CATEGORIES = frozenset({Category.CARS, Category.APPLIANCES})

# Every refusal a refund can meet at the till, each with its message `till.refund_refused.<code>`.
REFUND_REFUSAL_CODES = (
    "not_refundable",
    "refund_exceeds_paid",
    "settlement_in_progress",
    "merchant_expelled",
    "invalid_request",
    "form_reused",
)

# Every refusal the till can meet, each with its message `till.refused.<code>` in the catalogue.
REFUSAL_CODES = (
    "unknown_voucher",
    "voucher_used",
    "voucher_expired",
    "voucher_revoked",
    "unknown_merchant",
    "unknown_terminal",
    "merchant_not_active",
    "out_of_scope",
    "below_threshold",
    "invoice_required",
    "invoice_mismatch",
    "invoice_reused",
    "one_voucher_per_purchase",
    "merchant_daily_cap",
    "form_reused",
)


class Step(StrEnum):
    PREVIEW = "preview"
    CONFIRM = "confirm"


@dataclass
class TillForm:
    """What the cashier typed, as typed (so the form shows it again), and the problems found."""

    voucher_code: str = ""
    terminal_id: str = ""
    order_amount: str = ""
    merchant_discount: str = "0"
    order_ref: str = ""
    sales_invoice_no: str = ""
    sales_invoice_amount: str = ""
    tax_invoice_no: str = ""
    form_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    problems: dict[str, str] = field(default_factory=dict)

    def order(self, t: Translator, *, big_ticket: bool) -> TillOrder | None:
        """The order, or None with `problems` filled in the reader's language."""
        code = service.voucher_code_of(self.voucher_code)
        if not 17 <= len(code.replace("-", "").replace(" ", "")) <= 40:
            self.problems["voucher_code"] = t("till.problem.code")
        order = self._fen("order_amount", self.order_amount, t)
        discount = self._fen("merchant_discount", self.merchant_discount or "0", t, zero=True)
        if order is not None and discount is not None and discount >= order:
            self.problems["merchant_discount"] = t("till.problem.discount")
        if not self.terminal_id:
            self.problems["terminal_id"] = t("till.problem.terminal")
        invoice = None
        if big_ticket:
            amount = self._fen("sales_invoice_amount", self.sales_invoice_amount, t)
            for name in ("sales_invoice_no", "tax_invoice_no"):
                if not getattr(self, name).strip():
                    self.problems[name] = t("till.problem.invoice_no")
            if amount is not None and not self.problems:
                invoice = Invoice(self.sales_invoice_no.strip(), amount, self.tax_invoice_no.strip())
        if self.problems or order is None or discount is None:
            return None
        return TillOrder(
            voucher_code=code,
            terminal_id=self.terminal_id,
            order_amount=order,
            merchant_discount=discount,
            order_ref=self.order_ref.strip() or None,
            invoice=invoice,
        )

    def _fen(self, name: str, text: str, t: Translator, *, zero: bool = False) -> Fen | None:
        try:
            value = Fen.parse_yuan(text)
        except MoneyFormatError:
            self.problems[name] = t("till.problem.amount")
            return None
        if value < 0 or (value == 0 and not zero) or value > _MAX_FEN:
            self.problems[name] = t("till.problem.amount")
            return None
        return value


def _refusal(t: Translator, refusal: HuiminError) -> str:
    if refusal.code in REFUSAL_CODES:
        return t(f"till.refused.{refusal.code}")
    return t("till.refused.other", code=refusal.code or "")


async def _page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    form: TillForm,
    *,
    quote: Quote | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    merchant = await service.till_merchant(session, principal=user.principal)
    return render(
        request,
        "till.html",
        {
            "merchant": merchant,
            "big_ticket": _big_ticket(merchant),
            "form": form,
            "quote": quote,
            "error": error,
        },
        status=status,
        principal=user.principal,
        csrf_token=user.csrf_token,
    )


def _big_ticket(merchant: MerchantRow) -> bool:
    return Category(merchant.category) in BIG_TICKET_CATEGORIES


@router.get("")
async def till(request: Request, user: ConsoleUserDep, session: SessionDep) -> HTMLResponse:
    merchant = await service.till_merchant(session, principal=user.principal)
    terminals = [terminal.terminal_id for terminal in merchant.terminals]
    return await _page(request, user, session, TillForm(terminal_id=terminals[0] if terminals else ""))


@router.post("", response_model=None)
async def submit(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    step: Annotated[Step, Form()] = Step.PREVIEW,
    voucher_code: Annotated[str, Form(max_length=60)] = "",
    terminal_id: Annotated[str, Form(max_length=32)] = "",
    order_amount: Annotated[str, Form(max_length=20)] = "",
    merchant_discount: Annotated[str, Form(max_length=20)] = "0",
    order_ref: Annotated[str, Form(max_length=64)] = "",
    sales_invoice_no: Annotated[str, Form(max_length=32)] = "",
    sales_invoice_amount: Annotated[str, Form(max_length=20)] = "",
    tax_invoice_no: Annotated[str, Form(max_length=32)] = "",
    form_key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    user.principal.require(Permission.TILL_REDEEM)  # before reading the form: 403, not 422
    t = translator(request)
    form = TillForm(
        voucher_code=voucher_code,
        terminal_id=terminal_id,
        order_amount=order_amount,
        merchant_discount=merchant_discount,
        order_ref=order_ref,
        sales_invoice_no=sales_invoice_no,
        sales_invoice_amount=sales_invoice_amount,
        tax_invoice_no=tax_invoice_no,
    )
    if _FORM_KEY.fullmatch(form_key):
        form.form_key = form_key  # kept across preview and confirm: one purchase, one key
    async with unit_of_work(sessions) as session:
        merchant = await service.till_merchant(session, principal=user.principal)
        order = form.order(t, big_ticket=_big_ticket(merchant))
        if order is None:
            return await _page(request, user, session, form, error=t("till.problem.fix"), status=422)
        if step is Step.PREVIEW:
            try:
                quote = await service.till_quote(session, principal=user.principal, order=order, clock=clock)
            except HuiminError as refusal:
                if refusal.status >= 500:
                    raise
                return await _page(
                    request, user, session, form, error=_refusal(t, refusal), status=refusal.status
                )
            return await _page(request, user, session, form, quote=quote)
    written = WrittenEvents()
    try:
        redemption_id = await service.till_redeem(
            sessions,
            principal=user.principal,
            order=order,
            form_key=form.form_key,
            clock=clock,
            written=written,
        )
    except HuiminError as refusal:
        if refusal.status >= 500:
            raise
        async with unit_of_work(sessions) as session:
            return await _page(
                request, user, session, form, error=_refusal(t, refusal), status=refusal.status
            )
    await written.publish(request.app.state.redis)  # committed: on to the rules engine
    return RedirectResponse(f"{CONSOLE_PREFIX}/till/receipts/{redemption_id}", status_code=303)


@router.get("/receipts/{redemption_id}")
async def receipt(
    redemption_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    refund: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    detail = await service.redemption_detail(
        session, principal=user.principal, redemption_id=redemption_id, permission=Permission.TILL_REDEEM
    )
    refunded = next((row for row in detail.refunds if row.id == refund), None)
    return render(
        request,
        "till_receipt.html",
        {
            "detail": detail,
            "refund": refunded,  # the refund just made: its receipt on top
            "can_refund": service.till_may_refund(user.principal, detail.redemption),
        },
        principal=user.principal,
        csrf_token=user.csrf_token,
    )


# Refunds (退款)


@router.get("/refunds")
async def refunds(
    request: Request, user: ConsoleUserDep, session: SessionDep, clock: ClockDep
) -> HTMLResponse:
    """The cashier's own purchases of the last days that may still be refunded."""
    merchant = await service.till_merchant(session, principal=user.principal)
    rows = await service.till_refundable(session, principal=user.principal, clock=clock)
    return render(
        request,
        "till_refunds.html",
        {"merchant": merchant, "rows": rows},
        principal=user.principal,
        csrf_token=user.csrf_token,
    )


def _refund_refusal(t: Translator, refusal: HuiminError) -> str:
    if refusal.code in REFUND_REFUSAL_CODES:
        return t(f"till.refund_refused.{refusal.code}")
    return t("till.refused.other", code=refusal.code or "")


async def _refund_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    redemption_id: str,
    *,
    amount: str | None = None,
    form_key: str | None = None,
    quote: service.TillRefund | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = quote or await service.till_refund_quote(
        session, principal=user.principal, redemption_id=redemption_id
    )
    return render(
        request,
        "till_refund.html",
        {
            "found": found,
            "detail": found.detail,
            "amount": found.left.to_yuan_text() if amount is None else amount,
            "form_key": form_key or secrets.token_urlsafe(18),
            "error": error,
        },
        status=status,
        principal=user.principal,
        csrf_token=user.csrf_token,
    )


@router.get("/refunds/{redemption_id}")
async def refund_form(
    redemption_id: str, request: Request, user: ConsoleUserDep, session: SessionDep
) -> HTMLResponse:
    user.principal.require(Permission.TILL_REDEEM)
    return await _refund_page(request, user, session, redemption_id)


@router.post("/refunds/{redemption_id}", response_model=None)
async def refund_submit(
    redemption_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    step: Annotated[Step, Form()] = Step.PREVIEW,
    amount: Annotated[str, Form(max_length=20)] = "",
    form_key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """计算 shows what the refund returns (the subsidy back to the pool, the rest to the customer);
    确认退款 refunds through the redemption service and shows the receipt with the refund."""
    user.principal.require(Permission.TILL_REDEEM)  # before reading the form: 403, not 422
    t = translator(request)
    key = form_key if _FORM_KEY.fullmatch(form_key) else secrets.token_urlsafe(18)
    written = WrittenEvents()
    try:
        parsed = Fen.parse_yuan(amount)
    except MoneyFormatError:
        parsed = None
    try:
        if parsed is None or parsed <= 0 or parsed > _MAX_FEN:
            raise HuiminError("not an amount of yuan", code="invalid_request", status=422)
        async with unit_of_work(sessions) as session:
            quote = await service.till_refund_quote(
                session, principal=user.principal, redemption_id=redemption_id, amount=parsed
            )
            if step is Step.PREVIEW:
                return await _refund_page(
                    request, user, session, redemption_id, amount=amount, form_key=key, quote=quote
                )
        refunded = await service.till_refund(
            sessions,
            principal=user.principal,
            redemption_id=redemption_id,
            amount=parsed,
            form_key=key,
            clock=clock,
            written=written,
        )
    except HuiminError as refusal:
        if refusal.status >= 500 or refusal.status in (403, 404):
            raise  # pages of their own
        async with unit_of_work(sessions) as session:
            return await _refund_page(
                request,
                user,
                session,
                redemption_id,
                amount=amount,
                form_key=key,
                error=_refund_refusal(t, refusal),
                status=refusal.status,
            )
    await written.publish(request.app.state.redis)  # committed: on to the rules engine
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/till/receipts/{redemption_id}?refund={refunded.id}", status_code=303
    )
