"""`POST /api/v1/redemptions` as a plain ASGI route in front of FastAPI (`huimin.plain_http`).

The same request, signature, refusals and answer as the FastAPI route (`redemptions.endpoints.redeem`,
which documents it in the OpenAPI schema and answers it should this route be bypassed), without the
framework's per-request machinery; the redemption itself is decided with the other redemptions of the
worker's event-loop pass (`redemptions.batching`).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from huimin.auth.domain import PartnerKind
from huimin.errors import HuiminError
from huimin.idempotency.service import check_key, request_digest
from huimin.plain_http import answer, headers_of, parse_body, read_body, signed_request
from huimin.redemptions.batching import TillBatcher
from huimin.redemptions.schemas import RedemptionIn

__all__ = ["TillRedemptions", "redeem_answer"]

_PATH = "/api/v1/redemptions"


class TillRedemptions:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH:
            await self.app(scope, receive, send)
            return

        async def handle() -> tuple[int, dict[str, Any]]:
            raw = await read_body(receive)
            signed = await signed_request(scope, raw, headers_of(scope), kind=PartnerKind.TERMINAL)
            body = parse_body(RedemptionIn, raw)
            return await redeem_answer(
                scope["app"].state.till,
                partner_id=signed.partner.id,
                key=signed.headers.get("idempotency-key"),
                digest=request_digest("POST", signed.path, body.model_dump(mode="json")),
                body=body,
            )

        await answer(scope, send, route=_PATH, handle=handle)


async def redeem_answer(
    till: TillBatcher, *, partner_id: str, key: str | None, digest: str, body: RedemptionIn
) -> tuple[int, dict[str, Any]]:
    """The redemption's answer, a refusal raised as one (a replayed refusal too)."""
    status, stored = await till.redeem(
        partner_id=partner_id, key=check_key(key), digest=digest, request=body.to_request()
    )
    if status >= 400:
        raise HuiminError(stored.get("message", ""), code=stored.get("code"), status=status)
    return status, stored
