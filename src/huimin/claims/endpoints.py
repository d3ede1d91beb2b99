"""Rounds (public reads), the flash claim and the wallet (signed by the payment app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.claims import service
from huimin.claims.schemas import (
    ClaimIn,
    EntryIn,
    EntryOut,
    LotteryOut,
    LotteryWinnerOut,
    RoundOut,
    VoucherOut,
    round_out,
    voucher_out,
)
from huimin.deps import AppPartnerDep, ClockDep, SessionDep
from huimin.eligibility.geofence import Crs, Location
from huimin.idempotency.http import answer_once
from huimin.idempotency.service import Answer
from huimin.protection.http import admit_claim, refuse_sold_out
from huimin.risk import stream as risk_stream

router = APIRouter(prefix="/api/v1", tags=["claims"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    401: {"description": "missing_signature, bad_signature, stale_timestamp, replayed_nonce, unknown_key"},
    403: {
        "description": "not_eligible_location, not_union_member, identity_unverified, claims_blocked, "
        "wrong_partner_kind"
    },
    404: {"description": "unknown_round, unknown_batch, unknown_resident"},
    409: {"description": "sold_out, round_not_open, limit_reached, lottery_round, idempotency_in_progress"},
    422: {"description": "invalid_request, idempotency_mismatch"},
    429: {"description": "rate_limited (`limit` names it; retry after `Retry-After` seconds)"},
    503: {
        "description": "claims_paused (the claim gate is being rebuilt after a Redis failure), "
        "busy (this worker is at capacity; retry after `Retry-After` seconds)"
    },
}


@router.get("/rounds", response_model=list[RoundOut], summary="Rounds (场次) with status and remaining stock")
async def list_rounds(
    session: SessionDep, clock: ClockDep, campaign_id: Annotated[str | None, Query(max_length=32)] = None
) -> list[RoundOut]:
    return [
        round_out(board) for board in await service.list_rounds(session, clock=clock, campaign_id=campaign_id)
    ]


@router.get("/rounds/{round_id}", response_model=RoundOut, responses={404: {"description": "unknown_round"}})
async def get_round(round_id: str, session: SessionDep, clock: ClockDep) -> RoundOut:
    [board] = await service.list_rounds(session, clock=clock, round_id=round_id)
    return round_out(board)


@router.post(
    "/rounds/{round_id}/claims",
    status_code=201,
    response_model=VoucherOut,
    summary="Claim a voucher (领取) for a resident",
    responses=_REFUSALS,
    # before authentication: a batch known to be sold out is refused from memory (huimin.protection)
    dependencies=[Depends(refuse_sold_out)],
)
async def claim(
    round_id: str,
    body: ClaimIn,
    request: Request,
    partner: AppPartnerDep,
    clock: ClockDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    device_id: Annotated[
        str | None,
        Header(
            alias="X-Huimin-Device", max_length=128, description="the resident's device, for its rate limit"
        ),
    ] = None,
) -> JSONResponse:
    location = Location(body.location.lng, body.location.lat, Crs(body.location.crs))
    written = risk_stream.WrittenEvents()

    async def work(session: AsyncSession) -> Answer:
        written.watch(session)
        claimed = await service.claim_voucher(
            session,
            partner_id=partner.id,
            resident_id=body.resident_id,
            round_id=round_id,
            batch_id=body.batch_id,
            location=location,
            geofence=request.app.state.geofence,
            clock=clock,
            gate=request.app.state.claim_gate,
            idempotency_key=idempotency_key,
            # behind nginx, `huimin serve` trusts HUIMIN_TRUSTED_PROXIES' X-Forwarded-For for this address
            client_ip=request.client.host if request.client else None,
        )
        return 201, voucher_out(claimed.voucher, claimed.batch).model_dump(mode="json")

    async with admit_claim(request, partner_id=partner.id, resident_id=body.resident_id, device_id=device_id):
        response = await answer_once(
            request,
            partner_id=partner.id,
            key=idempotency_key,
            body=body.model_dump(mode="json"),
            work=work,
            store=request.app.state.idempotency_answers,
        )
    # committed: on to the rules engine (a stored answer replayed wrote nothing, so publishes nothing)
    await written.publish(request.app.state.redis)
    return response


@router.get(
    "/residents/{resident_id}/vouchers",
    response_model=list[VoucherOut],
    summary="The resident's wallet (卡包)",
    responses={404: {"description": "unknown_resident"}},
)
async def wallet(resident_id: str, partner: AppPartnerDep, session: SessionDep) -> list[VoucherOut]:
    rows = await service.wallet(session, partner_id=partner.id, resident_id=resident_id)
    return [voucher_out(voucher, batch) for voucher, batch in rows]


@router.post(
    "/rounds/{round_id}/entries",
    status_code=201,
    response_model=EntryOut,
    summary="Enter a lottery round (报名摇号); 200 when already entered",
    responses=_REFUSALS,
)
async def enter(
    round_id: str,
    body: EntryIn,
    request: Request,
    partner: AppPartnerDep,
    session: SessionDep,
    clock: ClockDep,
) -> JSONResponse:
    entered = await service.enter_lottery(
        session,
        partner_id=partner.id,
        resident_id=body.resident_id,
        round_id=round_id,
        batch_id=body.batch_id,
        location=Location(body.location.lng, body.location.lat, Crs(body.location.crs)),
        geofence=request.app.state.geofence,
        sealer=request.app.state.lottery_sealer,
        clock=clock,
    )
    entry = entered.entry
    out = EntryOut(
        entry_id=entry.id,
        round_id=entry.round_id,
        batch_id=entry.batch_id,
        entered_at=entry.entered_at,
        seed_sha256=entered.seed_sha256,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if entered.created else 200)


@router.get(
    "/rounds/{round_id}/lottery",
    response_model=LotteryOut,
    summary="The public record of a lottery round (摇号公示)",
    responses={404: {"description": "unknown_round"}},
)
async def lottery_record(round_id: str, session: SessionDep, clock: ClockDep) -> LotteryOut:
    record = await service.lottery_record(session, round_id=round_id)
    draw, round_ = record.draw, record.round
    if draw is not None and draw.drawn_at is not None:
        status = "drawn"
    elif clock.now() >= round_.closes_at:
        status = "awaiting_draw"
    else:
        status = "registering" if draw is not None else "not_committed"
    return LotteryOut(
        round_id=round_.id,
        code=round_.code,
        status=status,
        seed_sha256=draw.seed_sha256 if draw else None,
        seed=draw.seed if draw else None,
        entries=record.entries,
        entries_sha256=draw.entries_sha256 if draw else None,
        drawn_at=draw.drawn_at if draw else None,
        winners=[
            LotteryWinnerOut(batch_code=code, rank=rank, phone_masked=phone)
            for code, rank, phone in record.winners
        ],
    )
