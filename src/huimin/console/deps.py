"""Who is looking at a console page: the session cookie of `/api/v1/staff/sign-in` or of the console's
own sign-in form, with the same 30-minute idle rule. A page without a live session sends the browser
to the sign-in page (saying so when a session has just ended); every POST must carry the session's
CSRF token, in the form's `csrf_token` field or the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from huimin.auth.accounts import resolve_session
from huimin.auth.principals import Principal
from huimin.db import unit_of_work
from huimin.deps import SESSION_COOKIE
from huimin.errors import HuiminError

__all__ = ["ConsoleUser", "ConsoleUserDep", "SignInRequired", "csrf_failed"]


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    csrf_token: str  # the session's own token, echoed by every form of its pages

    def frame(self) -> dict[str, Any]:
        """What `render` needs to draw the page's frame for this user."""
        return {"principal": self.principal, "csrf_token": self.csrf_token}


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""

    def __init__(self, *, expired: bool) -> None:
        super().__init__("sign in first")
        self.expired = expired


def csrf_failed() -> HuiminError:
    return HuiminError("missing or wrong CSRF token", code="csrf_failed", status=403)


async def _console_user(request: Request) -> ConsoleUser:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired(expired=False)
    async with unit_of_work(request.app.state.sessions) as session:
        active = await resolve_session(session, token=token, clock=request.app.state.clock)
    if active is None:
        raise SignInRequired(expired=True)
    user = ConsoleUser(active.principal, active.csrf_token)
    request.state.console_user = user  # so that an error page still shows the user's frame
    if request.method not in ("GET", "HEAD"):
        form = await request.form()  # parsed once: the endpoint's Form() fields read the same
        sent = form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        if not isinstance(sent, str) or not hmac.compare_digest(sent, active.csrf_token):
            raise csrf_failed()
    return user


ConsoleUserDep = Annotated[ConsoleUser, Depends(_console_user)]
