"""HTTP for redemptions.

- `/api/v1/redemptions` (signed by a terminal partner, idempotent): redeem at the till, refund, read.
- `/api/v1/staff/redemptions` (console users): search, the county's invoice verification, the county
  sales ledger.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.schemas import JurisdictionTerm
from huimin.deps import ClockDep, SessionDep, StaffDep, TerminalPartnerDep, signed_path
from huimin.idempotency.http import answer_once
from huimin.idempotency.service import Answer, request_digest
from huimin.kit.money import Fen
from huimin.redemptions import flows, service
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.schemas import (
    RedemptionIn,
    RedemptionOut,
    RefundIn,
    RefundOut,
    StaffRedemptionOut,
    VerificationIn,
    redemption_out,
    refund_out,
    staff_redemption_out,
)
from huimin.redemptions.till_http import redeem_answer
from huimin.risk import stream as risk_stream

__all__ = ["router"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

till_router = APIRouter(prefix="/api/v1/redemptions", tags=["redemptions"])
staff_router = APIRouter(prefix="/api/v1/staff/redemptions", tags=["redemptions (console)"])

_TILL_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing_signature, bad_signature, stale_timestamp, replayed_nonce, unknown_key"},
    403: {"description": "wrong_partner_kind, unknown_terminal, merchant_not_active, out_of_scope"},
    404: {"description": "unknown_voucher, unknown_merchant, unknown_redemption"},
    409: {
        "description": "voucher_used, voucher_expired, voucher_revoked, invoice_reused, one_voucher_per_purchase, "
        "merchant_daily_cap, not_refundable, idempotency_in_progress"
    },
    422: {
        "description": "invalid_request, below_threshold, invoice_required, invoice_mismatch, refund_exceeds_paid, "
        "idempotency_mismatch, idempotency_key_required"
    },
}


@till_router.post(
    "",
    status_code=201,
    response_model=RedemptionOut,
    summary="Redeem a voucher at the till (核销)",
    responses=_TILL_REFUSALS,
)
async def redeem(
    body: RedemptionIn,
    request: Request,
    partner: TerminalPartnerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Answered by the plain ASGI route `redemptions.till_http` in front of this app; decided with the
    other redemptions of the worker's event-loop pass (`redemptions.batching`)."""
    status, answer = await redeem_answer(
        request.app.state.till,
        partner_id=partner.id,
        key=idempotency_key,
        digest=request_digest(request.method, signed_path(request), body.model_dump(mode="json")),
        body=body,
    )
    return JSONResponse(answer, status_code=status)


@till_router.get(
    "/{redemption_id}",
    response_model=RedemptionOut,
    summary="One redemption, as the terminal partner that sent it sees it",
    responses={404: {"description": "unknown_redemption"}},
)
async def get_redemption(
    redemption_id: str, partner: TerminalPartnerDep, session: SessionDep
) -> RedemptionOut:
    return redemption_out(
        await service.get_redemption(session, partner_id=partner.id, redemption_id=redemption_id)
    )


@till_router.post(
    "/{redemption_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    summary="Refund part or all of a redeemed purchase (退款)",
    responses=_TILL_REFUSALS,
)
async def refund(
    redemption_id: str,
    body: RefundIn,
    request: Request,
    partner: TerminalPartnerDep,
    clock: ClockDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    written = risk_stream.WrittenEvents()

    async def work(session: AsyncSession) -> Answer:
        written.watch(session)
        refunded = await service.refund(
            session,
            partner_id=partner.id,
            redemption_id=redemption_id,
            amount=Fen(body.amount_fen),
            clock=clock,
            idempotency_key=idempotency_key,
        )
        return 201, refund_out(refunded.refund, refunded.redemption).model_dump(mode="json")

    response = await answer_once(
        request, partner_id=partner.id, key=idempotency_key, body=body.model_dump(mode="json"), work=work
    )
    await written.publish(request.app.state.redis)  # committed: on to the rules engine
    return response


_STAFF: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden, csrf_failed"},
    404: {"description": "unknown_redemption, unknown_campaign (or outside the caller's jurisdiction)"},
}


@staff_router.get("", response_model=list[StaffRedemptionOut], summary="Search redemptions", responses=_STAFF)
async def search(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    status: RedemptionStatus | None = None,
    big_ticket: bool | None = None,
    since: date | None = None,
    until: date | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[StaffRedemptionOut]:
    rows = await service.search(
        session,
        principal=principal,
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        status=status,
        big_ticket=big_ticket,
        since=since,
        until=until,
        page=page,
        page_size=page_size,
    )
    return [staff_redemption_out(*row) for row in rows]


@staff_router.post(
    "/{redemption_id}/verification",
    response_model=RedemptionOut,
    summary="Verify or reject a big-ticket purchase's invoices (county, own jurisdiction)",
    responses={**_STAFF, 409: {"description": "not_pending"}, 422: {"description": "reason_required"}},
)
async def verify(
    redemption_id: str, body: VerificationIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> RedemptionOut:
    row = await service.verify(
        session,
        principal=principal,
        redemption_id=redemption_id,
        approve=body.approve,
        note=body.note,
        clock=clock,
    )
    return redemption_out(row)


@staff_router.get(
    "/sales-ledger.xlsx",
    response_class=Response,
    summary="The county car and appliance sales ledger (汽车、家电销售台账) as XLSX",
    responses={200: {"content": {XLSX: {}}}, **_STAFF},
)
async def sales_ledger(
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
) -> Response:
    ledger = await flows.export_sales_ledger(
        session, principal=principal, campaign_id=campaign_id, jurisdiction=jurisdiction, clock=clock
    )
    return Response(
        ledger.content,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(ledger.file_name)}"},
    )


router = APIRouter()
router.include_router(till_router)
router.include_router(staff_router)
