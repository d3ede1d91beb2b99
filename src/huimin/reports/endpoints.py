"""HTTP for the reports (console users, permission `report.read`):

- `GET /api/v1/staff/reports/figures`: the figures of a campaign, live or for a period, with a breakdown;
- `GET /api/v1/staff/reports/{kind}.xlsx`: claims, redemptions, merchants, the funders' statement.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from huimin.campaigns.schemas import CategoryTerm, JurisdictionTerm, MerchantClassTerm
from huimin.deps import ClockDep, SessionDep, StaffDep
from huimin.reports import exports, service
from huimin.reports.domain import Dimension
from huimin.reports.schemas import ReportOut, report_out

__all__ = ["router"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

router = APIRouter(prefix="/api/v1/staff/reports", tags=["reports (console)"])

_STAFF: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden"},
    404: {"description": "unknown_campaign, unknown_jurisdiction (another county's)"},
}


@router.get(
    "/figures", response_model=ReportOut, summary="The campaign's figures (统计数据)", responses=_STAFF
)
async def figures(
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    since: date | None = None,
    until: date | None = None,
    round_id: Annotated[str | None, Query(max_length=32)] = None,
    batch_id: Annotated[str | None, Query(max_length=32)] = None,
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
    category: Annotated[CategoryTerm | None, Query()] = None,
    merchant_class: Annotated[MerchantClassTerm | None, Query()] = None,
    by: Dimension | None = None,
) -> ReportOut:
    report = await service.figures(
        session,
        principal=principal,
        campaign_id=campaign_id,
        query=service.Query(
            since=since,
            until=until,
            round_id=round_id,
            batch_id=batch_id,
            jurisdiction=jurisdiction,
            category=category,
            merchant_class=merchant_class,
            by=by,
        ),
        clock=clock,
    )
    return report_out(report)


@router.get(
    "/{kind}.xlsx",
    response_class=Response,
    summary="An XLSX export: claims, redemptions (masked), merchants, the funders' statement",
    responses={200: {"content": {XLSX: {}}}, **_STAFF},
)
async def export(
    kind: exports.ExportKind,
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
) -> Response:
    found = await exports.export(
        session,
        principal=principal,
        campaign_id=campaign_id,
        kind=kind,
        clock=clock,
        jurisdiction=jurisdiction,
    )
    return Response(
        found.content,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.file_name)}"},
    )
