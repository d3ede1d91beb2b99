"""The reports page (报表): a campaign's figures, live or for a period, narrowed by jurisdiction,
category or merchant class and broken down by day, week, round, batch, district, jurisdiction,
category or merchant class, with charts; and every export the reports package offers (the XLSX
workbooks, the county sales ledgers, the summary 活动总结 as HTML and PDF).

The figures are `huimin.reports.service.figures` (the rollups, never the raw rows), with its scope: a
county reviewer sees its own jurisdiction and asking for another answers 404. The workbooks are
`huimin.reports.exports.export`, which masks personal data and records each download in the audit
trail; the summary is recorded there too (`console.service.campaign_summary`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.console import service
from huimin.console.deps import ConsoleUserDep
from huimin.console.i18n import Translator
from huimin.console.web import CONSOLE_PREFIX, parse_day, parse_term, render, translator
from huimin.deps import ClockDep, SessionDep
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.reports import exports
from huimin.reports import service as reports
from huimin.reports.domain import Dimension, Figures
from huimin.reports.summary import count, percent

__all__ = ["router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/reports", include_in_schema=False)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SUMMARY_TYPES = {
    service.SummaryFormat.HTML: "text/html; charset=utf-8",
    service.SummaryFormat.PDF: "application/pdf",
}
# The headline figures, in the order the summary reports them: (key, how to write it).
_HEADLINE = (
    ("released", "count"),
    ("claimed", "count"),
    ("redeemed", "count"),
    ("redemption_rate", "percent"),
    ("subsidy_fen", "fen"),
    ("consumption_fen", "fen"),
    ("leverage", "leverage"),
    ("residents_claiming", "count"),
    ("residents_redeeming", "count"),
    ("merchants_redeeming", "count"),
)
_MORE = (
    ("claimed_value_fen", "fen"),
    ("held", "count"),
    ("expired", "count"),
    ("recycled", "count"),
    ("subsidy_confirmed_fen", "fen"),
    ("subsidy_pending_fen", "fen"),
    ("merchant_discounts_fen", "fen"),
    ("refunds", "count"),
    ("refund_subsidy_fen", "fen"),
    ("invoices_verified", "count"),
    ("invoices_rejected", "count"),
    ("clawed_back", "count"),
)


def _text(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "fen":
        return Fen(value).format()
    if unit == "percent":
        return percent(value)
    if unit == "leverage":
        return f"1 : {value}"
    return count(value)


def _written(figures: Figures, keys: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(key, _text(getattr(figures, key), unit)) for key, unit in keys]


def _label(line: reports.Line, by: Dimension, t: Translator) -> str:
    """A breakdown line's label in the reader's language where the vocabulary has it."""
    kinds = {
        Dimension.DISTRICT: "district",
        Dimension.JURISDICTION: "jurisdiction",
        Dimension.CATEGORY: "category",
        Dimension.MERCHANT_CLASS: "merchant_class",
    }
    if by in kinds and t.has(f"{kinds[by]}.{line.key}"):
        return t.term(kinds[by], line.key)
    return line.label


def _chart(lines: list[tuple[str, reports.Line]], t: Translator, what: str) -> str:
    """A chart's data for overview.js (a data-* attribute: pages carry no inline script). The subsidy
    is drawn in whole yuan; the table under the chart has it to the fen."""
    values = [
        line.figures.redeemed if what == "redeemed" else line.figures.subsidy_fen // 100 for _, line in lines
    ]
    payload = {
        "labels": [label for label, _ in lines],
        "values": values,
        "name": t(f"reports.chart_{what}"),
        "color": "red",
        "unit": t(f"reports.unit_{what}"),
        "empty": t("chart.no_redemptions"),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


@router.get("")
async def figures_page(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=16)] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    merchant_class: Annotated[str | None, Query(max_length=32)] = None,
    by: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    user.principal.require(Permission.REPORT_READ)
    t = translator(request)
    known = await campaigns.list_campaigns(session)
    campaign = service.choose_campaign(known, campaign_id, clock.now())
    dimension = parse_term(Dimension, "by", by) or Dimension.DAY
    query = reports.Query(
        since=parse_day("since", since),
        until=parse_day("until", until),
        jurisdiction=parse_term(Jurisdiction, "jurisdiction", jurisdiction),
        category=parse_term(Category, "category", category),
        merchant_class=parse_term(MerchantClass, "merchant_class", merchant_class),
        by=dimension,
    )
    report = (
        None
        if campaign is None
        else await reports.figures(
            session, principal=user.principal, campaign_id=campaign.id, query=query, clock=clock
        )
    )
    lines = [] if report is None else [(_label(line, dimension, t), line) for line in report.lines]
    can = user.principal.can
    filters = {
        "campaign_id": campaign.id if campaign else "",
        "since": since or "",
        "until": until or "",
        "jurisdiction": jurisdiction or "",
        "category": category or "",
        "merchant_class": merchant_class or "",
        "by": dimension.value,
    }
    scope = user.principal.jurisdiction
    return render(
        request,
        "reports.html",
        {
            "campaigns": known,
            "campaign": campaign,
            "report": report,
            "headline": [] if report is None else _written(report.figures, _HEADLINE),
            "more": [] if report is None else _written(report.figures, _MORE),
            "lines": [(label, line, _written(line.figures, _HEADLINE)) for label, line in lines],
            "by": dimension.value,
            "periodic": dimension in (Dimension.DAY, Dimension.WEEK),
            "dimensions": list(Dimension),
            "jurisdictions": [scope] if scope else list(Jurisdiction),
            "categories": list(Category),
            "classes": list(MerchantClass),
            "filters": filters,
            "chart_redeemed": _chart(lines, t, "redeemed"),
            "chart_subsidy": _chart(lines, t, "subsidy"),
            "export_query": urlencode(
                {"campaign_id": campaign.id if campaign else ""}
                | ({"jurisdiction": jurisdiction} if jurisdiction and not scope else {})
            ),
            "exports": [
                kind
                for kind in exports.ExportKind
                if kind is not exports.ExportKind.STATEMENT or can(Permission.SETTLEMENT_READ)
            ],
            # The county sales ledgers: a county its own; the city and the operator each county's
            # and the whole city's (None).
            "ledgers": []
            if not can(Permission.SALES_LEDGER_EXPORT)
            else [scope]
            if scope
            else [None, *Jurisdiction],
            "may_summarise": can(Permission.SETTLEMENT_READ) and scope is None,
            "scope_text": t.term("jurisdiction", scope) if scope else t("app.city_wide"),
        },
        **user.frame(),
    )


@router.get("/summary.{fmt}")
async def summary(
    fmt: service.SummaryFormat,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
) -> Response:
    """活动总结 as HTML or PDF, audited (`export.report_summary`)."""
    name, content = await service.campaign_summary(
        session, principal=user.principal, campaign_id=campaign_id, fmt=fmt, clock=clock
    )
    return Response(
        content,
        media_type=_SUMMARY_TYPES[fmt],
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


@router.get("/{kind}.xlsx")
async def export(
    kind: exports.ExportKind,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    jurisdiction: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """An XLSX workbook (claims and redemptions masked), audited (`export.report_<kind>`)."""
    found = await exports.export(
        session,
        principal=user.principal,
        campaign_id=campaign_id,
        kind=kind,
        clock=clock,
        jurisdiction=parse_term(Jurisdiction, "jurisdiction", jurisdiction),
    )
    return Response(
        found.content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.file_name)}",
            "Cache-Control": "no-store",
        },
    )
