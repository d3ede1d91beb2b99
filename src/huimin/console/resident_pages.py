"""The resident's own page inside the payment app (`/h5/me`): the batches open now in the order the
resident is likeliest to spend them (千人千面, `allocation.service.offers_for`), a 领取 button on each,
and the wallet (卡包). The app hands the resident over with a signed link (`/h5/enter`, see
`resident_session`); a claim from here is the same `claims.service.claim_voucher` the partner API
runs, for the partner that vouched for the resident, with the phone's location.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.allocation import service as allocation
from huimin.claims import service as claims
from huimin.claims.express import ExpressClaim, decide_claim
from huimin.claims.express_http import Express
from huimin.console.h5 import batch_rules
from huimin.console.resident_session import LIFETIME, RESIDENT_COOKIE, enter, open_session, seal
from huimin.console.web import H5_PREFIX, render, translator
from huimin.deps import ClockDep, SessionDep, SessionsDep, SettingsDep
from huimin.eligibility.geofence import Crs, Location
from huimin.errors import HuiminError
from huimin.idempotency.service import Answer, check_key, request_digest, run_once
from huimin.kit.network import network_prefix
from huimin.protection.http import admit_claim, client_ip_of
from huimin.risk.stream import WrittenEvents

__all__ = ["router"]

router = APIRouter(prefix=H5_PREFIX, include_in_schema=False)
ME = f"{H5_PREFIX}/me"


def _session_expired() -> HuiminError:
    return HuiminError(
        "please open this page again from the payment app", code="resident_session_expired", status=401
    )


@router.get("/enter")
async def enter_page(
    request: Request,
    settings: SettingsDep,
    clock: ClockDep,
    resident_id: Annotated[str, Query(min_length=1, max_length=32)],
    key: Annotated[str | None, Query(max_length=64)] = None,
    ts: Annotated[str | None, Query(max_length=16)] = None,
    nonce: Annotated[str | None, Query(max_length=64)] = None,
    sig: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    partner_id = await enter(
        keys=request.app.state.partner_keys,
        nonces=request.app.state.nonces,
        resident_id=resident_id,
        key_id=key,
        timestamp=ts,
        nonce=nonce,
        signature=sig,
        clock=clock,
    )
    response = RedirectResponse(ME, status_code=303)
    response.set_cookie(
        RESIDENT_COOKIE,
        seal(
            settings.secret_key.get_secret_value(),
            partner_id=partner_id,
            resident_id=resident_id,
            now=clock.now(),
        ),
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",  # the app's webview arrives by a link: Lax keeps the cookie for that navigation
        secure=settings.env == "production",
        path=H5_PREFIX,
    )
    return response


@router.get("/me")
async def my_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    claimed: Annotated[str | None, Query(max_length=32)] = None,
    refused: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    me = open_session(
        settings.secret_key.get_secret_value(), request.cookies.get(RESIDENT_COOKIE), now=clock.now()
    )
    if me is None:
        raise _session_expired()
    t = translator(request)
    offers = await allocation.offers_for(
        session, partner_id=me.partner_id, resident_id=me.resident_id, clock=clock
    )
    wallet = await claims.wallet(session, partner_id=me.partner_id, resident_id=me.resident_id)
    boards = {board.round.id: board for board in await claims.list_rounds(session, clock=clock)}
    batches = {batch.id: batch for _, batch in wallet}
    remaining = {}
    for board in boards.values():
        for _, batch, left in board.stock:
            batches.setdefault(batch.id, batch)
            remaining[board.round.id, batch.id] = left
    rows = []
    for offer in offers:
        left = remaining.get((offer.round_id, offer.batch_id), 0)
        rows.append({"offer": offer, "rules": batch_rules(batches[offer.batch_id], t), "remaining": left})
    return render(
        request,
        "h5_me.html",
        {
            "now": clock.now(),
            "offers": rows,
            "wallet": [(voucher, batch_rules(batch, t)) for voucher, batch in wallet],
            "csrf_token": me.csrf_token,
            "claimed": claimed,
            "refused": refused,
            "form_key": secrets.token_urlsafe(16),
        },
    )


@router.post("/me/claims")
async def claim(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    clock: ClockDep,
    round_id: Annotated[str, Form(max_length=32)],
    batch_id: Annotated[str, Form(max_length=32)],
    csrf_token: Annotated[str, Form(max_length=64)],
    form_key: Annotated[str, Form(min_length=8, max_length=64)],
    lng: Annotated[float | None, Form(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
) -> Response:
    me = open_session(
        settings.secret_key.get_secret_value(), request.cookies.get(RESIDENT_COOKIE), now=clock.now()
    )
    if me is None:
        raise _session_expired()
    if not secrets.compare_digest(csrf_token, me.csrf_token):
        raise HuiminError("missing or wrong CSRF token", code="csrf_failed", status=403)
    if lng is None or lat is None:
        return RedirectResponse(f"{ME}?{urlencode({'refused': 'location_required'})}", status_code=303)
    key = f"h5:{me.resident_id}:{form_key}"  # one per rendered button: a double tap claims once
    location = Location(lng, lat, Crs.WGS84)  # the browser's fix: WGS-84
    protection = request.app.state.protection
    # the phone's address (behind nginx: from X-Forwarded-For of a trusted proxy), as the partner API's
    client_ip = client_ip_of(request.scope, protection.trusted_proxies)
    express: Express | None = getattr(request.app.state, "express", None)

    async def express_claim(express: Express) -> str:  # decided in Redis like the partner API's
        answer = await decide_claim(
            ExpressClaim(
                partner_id=me.partner_id,
                resident_id=me.resident_id,
                round_id=round_id,
                batch_id=batch_id,
                location=location,
                idempotency_key=check_key(key),
                digest=request_digest("POST", request.url.path, {"round_id": round_id, "batch_id": batch_id}),
                ip_prefix=network_prefix(client_ip),
            ),
            contexts=express.contexts,
            gate=express.gate,
            geofence=request.app.state.geofence,
            clock=clock,
        )
        return str(answer["code"])

    async def synchronous_claim() -> str:
        written = WrittenEvents()

        async def work(session: AsyncSession) -> Answer:
            written.watch(session)
            claimed = await claims.claim_voucher(
                session,
                partner_id=me.partner_id,
                resident_id=me.resident_id,
                round_id=round_id,
                batch_id=batch_id,
                location=location,
                geofence=request.app.state.geofence,
                clock=clock,
                gate=request.app.state.claim_gate,
                idempotency_key=key,
                client_ip=client_ip,
            )
            return 201, {"code": claimed.voucher.code}

        # Once per button, like the partner API's Idempotency-Key: a double tap gets the first answer.
        # Its own transaction: a refusal rolls it back whole before the page says why.
        _, body = await run_once(
            sessions,
            partner_id=me.partner_id,
            key=key,
            digest=request_digest("POST", request.url.path, {"round_id": round_id, "batch_id": batch_id}),
            clock=clock,
            work=work,
            store=request.app.state.idempotency_answers,
        )
        await written.publish(request.app.state.redis)  # committed: on to the rules engine
        return str(body["code"])

    try:
        # the same claim slots and rate limits (per resident, address, all claims) as the partner API's
        async with admit_claim(request, partner_id=me.partner_id, resident_id=me.resident_id, device_id=None):
            code = await (express_claim(express) if express is not None else synchronous_claim())
    except HuiminError as refusal:
        return RedirectResponse(f"{ME}?{urlencode({'refused': refusal.code})}", status_code=303)
    return RedirectResponse(f"{ME}?{urlencode({'claimed': code})}", status_code=303)
