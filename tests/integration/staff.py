"""Acting as a console user in HTTP tests without signing in: a header names the principal, and a
middleware of the test app puts it on the request (the sign-in itself is tested on its own)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from huimin.auth.principals import Principal, Role
from huimin.kit.terms import Jurisdiction

__all__ = ["accept_test_principals", "as_"]


def as_(principal: Principal) -> dict[str, str]:
    fields = {key: value for key, value in dataclasses.asdict(principal).items() if value is not None}
    return {"X-Test-Principal": json.dumps(fields)}  # ASCII: names are \\u-escaped


def accept_test_principals(application: FastAPI) -> None:
    @application.middleware("http")
    async def signed_in_as(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        header = request.headers.get("X-Test-Principal")
        if header:
            fields: dict[str, Any] = json.loads(header)
            request.state.principal = Principal(
                **{
                    **fields,
                    "role": Role(fields["role"]),
                    "jurisdiction": Jurisdiction(fields["jurisdiction"])
                    if "jurisdiction" in fields
                    else None,
                }
            )
        return await call_next(request)
