"""Rendering console pages: the Jinja2 environment, the frame every page shares (header, navigation
by permission, language switch), and the pages for errors.

Pages carry no inline script or style (the Content-Security-Policy forbids both): behaviour lives in
/console/static/*.js and reads what it needs from data-* attributes or JSON endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from huimin.auth.principals import Permission, Principal, Role
from huimin.console.figures import figure_text
from huimin.console.i18n import LANG_COOKIE, LANGUAGES, Translator, choose
from huimin.console.service import AUDIT_READER
from huimin.errors import InvalidInput, Problem
from huimin.kit.clock import to_local
from huimin.kit.money import Fen

__all__ = [
    "CONSOLE_PREFIX",
    "H5_PREFIX",
    "Decision",
    "NavItem",
    "error_page",
    "home_of",
    "is_console",
    "navigation",
    "page_count",
    "parse_term",
    "render",
]

CONSOLE_PREFIX = "/console"
H5_PREFIX = "/h5"

_ENVIRONMENT = Environment(
    loader=PackageLoader("huimin.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,  # a misspelt variable is an error, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)


def _local_time(instant: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if instant is None else to_local(instant).strftime(pattern)


def _fen(value: int) -> str:
    return Fen(value).format()


def _number(value: int) -> str:
    return f"{value:,}"


_ENVIRONMENT.filters.update(local_time=_local_time, fen=_fen, number=_number, figure_value=figure_text)


@dataclass(frozen=True)
class NavItem:
    key: str  # catalogue key of its label
    href: str


def navigation(principal: Principal) -> list[NavItem]:
    """What the role may open, in the order officials work: only pages its permissions allow. A
    merchant user lands on the till."""
    items = []
    if principal.can(Permission.REPORT_READ):
        items.append(NavItem("nav.overview", f"{CONSOLE_PREFIX}/overview"))
    if principal.can(Permission.CAMPAIGN_READ):
        items.append(NavItem("nav.campaigns", f"{CONSOLE_PREFIX}/campaigns"))
    if principal.can(Permission.MERCHANT_REVIEW):
        items.append(NavItem("nav.review_queue", f"{CONSOLE_PREFIX}/merchants/review"))
    if principal.can(Permission.INVOICE_VERIFY):
        items.append(NavItem("nav.invoices", f"{CONSOLE_PREFIX}/invoices"))
    if principal.can(Permission.TILL_REDEEM):
        items.append(NavItem("nav.till", f"{CONSOLE_PREFIX}/till"))
    if principal.role is Role.MERCHANT and principal.merchant_id:
        items.append(NavItem("nav.own_merchant", f"{CONSOLE_PREFIX}/merchants/{principal.merchant_id}"))
    elif principal.can(Permission.MERCHANT_READ):
        items.append(NavItem("nav.merchants", f"{CONSOLE_PREFIX}/merchants"))
    if principal.can(Permission.MERCHANT_PUBLISH):
        items.append(NavItem("nav.final_list", f"{CONSOLE_PREFIX}/merchants/final-list"))
    if principal.can(Permission.REDEMPTION_READ):
        items.append(NavItem("nav.redemptions", f"{CONSOLE_PREFIX}/redemptions"))
    if principal.can(Permission.LEDGER_READ):
        items.append(NavItem("nav.money", f"{CONSOLE_PREFIX}/money"))
    if principal.can(Permission.SETTLEMENT_READ):
        items.append(NavItem("nav.settlement", f"{CONSOLE_PREFIX}/settlement"))
    if principal.can(Permission.REPORT_READ):
        items.append(NavItem("nav.reports", f"{CONSOLE_PREFIX}/reports"))
    if principal.can(Permission.RISK_READ):
        items.append(NavItem("nav.risk", f"{CONSOLE_PREFIX}/risk"))
    elif principal.can(Permission.RISK_REFERRAL_READ):  # a receiving department: its referred cases
        items.append(NavItem("nav.risk_cases", f"{CONSOLE_PREFIX}/risk/cases"))
    if principal.can(Permission.COMPLAINT_READ):
        items.append(NavItem("nav.complaints", f"{CONSOLE_PREFIX}/complaints"))
    if principal.can(Permission.INSPECTION_READ):
        items.append(NavItem("nav.inspections", f"{CONSOLE_PREFIX}/inspections"))
    if principal.can(Permission.ANNOUNCEMENT_PUBLISH):
        items.append(NavItem("nav.announcements", f"{CONSOLE_PREFIX}/announcements"))
    if principal.can(Permission.ALLOCATION_PLAN):
        items.append(NavItem("nav.allocation", f"{CONSOLE_PREFIX}/allocation"))
    if principal.can(Permission.USER_MANAGE):
        items.append(NavItem("nav.users", f"{CONSOLE_PREFIX}/users"))
    if principal.can(AUDIT_READER):
        items.append(NavItem("nav.audit", f"{CONSOLE_PREFIX}/audit"))
    return items


def home_of(principal: Principal) -> str:
    """Where a signed-in user lands: the first page of its navigation."""
    items = navigation(principal)
    return items[0].href if items else f"{CONSOLE_PREFIX}/sign-in"


def is_console(request: Request) -> bool:
    """Console and H5 paths answer refusals with pages, not JSON."""
    path = request.url.path
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in (CONSOLE_PREFIX, H5_PREFIX))


def translator(request: Request) -> Translator:
    return Translator(choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)))


def _switch_url(request: Request, lang: str) -> str:
    query = [(key, value) for key, value in request.query_params.multi_items() if key != "lang"]
    return f"{request.url.path}?{urlencode([*query, ('lang', lang)])}"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    principal: Principal | None = None,
    csrf_token: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    t = translator(request)
    other = "en" if t.lang == "zh" else "zh"
    nav = navigation(principal) if principal is not None else []
    path = request.url.path
    active = max((item.href for item in nav if path.startswith(item.href)), key=len, default=None)
    page = _ENVIRONMENT.get_template(template).render(
        {
            "t": t,
            "lang": t.lang,
            "principal": principal,
            "csrf_token": csrf_token,
            "nav": nav,
            "active_href": active,
            "switch_url": _switch_url(request, other),
            "path": path,
            **(context or {}),
        }
    )
    response = HTMLResponse(page, status_code=status)
    # Pages show personal and financial data: never cache them.
    response.headers["Cache-Control"] = "no-store"
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 24 * 3600, samesite="lax", path="/")
    return response


def error_page(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    principal: Principal | None = None,
) -> HTMLResponse:
    """A refusal as a page: a short explanation in the reader's language, and the stable code."""
    t = translator(request)
    if status == 403 and code == "csrf_failed":
        explanation = t("error.csrf_failed")
    elif status in (403, 404):
        explanation = t(f"error.{status}")
    elif status >= 500:
        explanation = t("error.server")
    elif status == 409:
        explanation = f"{t('error.conflict')} {message}"
    elif status == 422:
        explanation = f"{t('error.invalid')} {message}"
    else:
        explanation = f"{t('error.generic')} {message}"
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "explanation": explanation},
        principal=principal,
        status=status,
    )


class Decision(StrEnum):
    """An approve-or-reject form's answer (merchant review, invoice verification)."""

    APPROVE = "approve"
    REJECT = "reject"


E = TypeVar("E", bound=StrEnum)


def parse_term(kind: type[E], field: str, value: str | None) -> E | None:
    """A filter's code, or None when empty; an unknown code is refused (422), never ignored."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput([Problem(field, f"unknown {field} {value!r}")], code="invalid_request") from None


def parse_day(field: str, value: str | None) -> date | None:
    """A filter's day (YYYY-MM-DD), or None when empty; anything else is refused (422)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput([Problem(field, f"not a date: {value!r}")], code="invalid_request") from None


def page_count(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))
