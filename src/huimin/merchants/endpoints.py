"""HTTP for merchants. `router` carries all three parts, so one `app.include_router(router)` wires them:

- `/api/v1/merchants` (public, no sign-in): active merchants for residents; the commitment text.
- `/api/v1/staff/merchants` (console users): the onboarding workflow, the final list, exports.
- `/api/v1/staff/dishonest-list` (console users): the dishonest list (失信名单), delisting.

Endpoints parse, call a service with the signed-in principal, and shape the answer; who may do what
is decided in `service` (403 `forbidden`, 404 outside the caller's scope).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.campaigns.schemas import CategoryTerm, JurisdictionTerm
from huimin.deps import ClockDep, SessionDep, SettingsDep, StaffDep
from huimin.errors import HuiminError, InvalidInput, Problem
from huimin.kit.terms import Category, Jurisdiction, TermError
from huimin.merchants import flows, service
from huimin.merchants.domain import Action, MerchantStatus, jurisdictions_of_place
from huimin.merchants.schemas import (
    ApplicationIn,
    CommitmentIn,
    CommitmentTextOut,
    DishonestEntryOut,
    ImportReportOut,
    InvitationIn,
    MerchantDetailOut,
    MerchantOut,
    MerchantPage,
    PublicMerchantPage,
    PublishIn,
    PublishOut,
    ReasonIn,
    ReviewIn,
    commitment_text_out,
    dishonest_entry_out,
    import_report_out,
    merchant_detail_out,
    merchant_out,
    merchant_page,
    public_merchant_page,
)

__all__ = ["dishonest_router", "public_router", "router", "staff_router"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_IMPORT_BYTES = 20 * 1024 * 1024  # an invitation list of 100,000 rows is a few MB

public_router = APIRouter(prefix="/api/v1/merchants", tags=["merchants"])
staff_router = APIRouter(prefix="/api/v1/staff/merchants", tags=["merchants (console)"])
dishonest_router = APIRouter(prefix="/api/v1/staff/dishonest-list", tags=["merchants (console)"])

_ACT: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden (the role may not), csrf_failed"},
    404: {"description": "unknown_merchant (also for another jurisdiction's merchant)"},
    409: {"description": "invalid_transition, merchant_dishonest, terminal_taken, commitment_mismatch"},
    422: {"description": "invalid_request, invalid_application, reason_required"},
}


# Public


@public_router.get(
    "",
    response_model=PublicMerchantPage,
    summary="Active merchants where vouchers can be spent (public)",
    responses={422: {"description": "invalid_request (unknown category or district)"}},
)
async def list_public(
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=20, description="餐饮, 零售, ... or its code")] = None,
    district: Annotated[
        str | None,
        Query(max_length=20, description="雁江区 (with 高新区, 临空经济区), 安岳县, 乐至县, or one zone"),
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
) -> PublicMerchantPage:
    problems = []
    parsed_category = None
    jurisdictions: frozenset[Jurisdiction] = frozenset()
    if category:
        try:
            parsed_category = Category.parse(category)
        except TermError as error:
            problems.append(Problem("category", str(error)))
    if district:
        try:
            jurisdictions = jurisdictions_of_place(district)
        except TermError as error:
            problems.append(Problem("district", str(error)))
    if problems:
        raise InvalidInput(problems, code="invalid_request")
    found = await service.public_merchants(
        session,
        campaign_id=campaign_id,
        category=parsed_category,
        jurisdictions=jurisdictions,
        page=page,
        page_size=page_size,
    )
    return public_merchant_page(found)


@public_router.get(
    "/commitment",
    response_model=CommitmentTextOut,
    summary="The integrity commitment (承诺书) merchants accept",
)
async def get_commitment() -> CommitmentTextOut:
    return commitment_text_out(service.commitment_text())


# Console: the workflow


@staff_router.get("", response_model=MerchantPage, summary="Merchants the caller may see", responses=_ACT)
async def list_merchants(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[list[MerchantStatus] | None, Query()] = None,
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
    category: Annotated[CategoryTerm | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100, description="part of the name or credit code")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> MerchantPage:
    found = await service.list_merchants(
        session,
        principal=principal,
        campaign_id=campaign_id,
        statuses=status or (),
        jurisdiction=jurisdiction,
        category=category,
        text=q,
        page=page,
        page_size=page_size,
    )
    return merchant_page(found)


@staff_router.post(
    "/invitations",
    status_code=201,
    response_model=MerchantOut,
    summary="Invite one merchant (定向邀约)",
    responses=_ACT,
)
async def invite(
    body: InvitationIn, session: SessionDep, principal: StaffDep, clock: ClockDep, settings: SettingsDep
) -> MerchantOut:
    row = await service.invite(
        session,
        principal=principal,
        campaign_id=body.campaign_id,
        invitation=body.invitation(),
        sealer=service.MerchantSealer.from_settings(settings),
        clock=clock,
    )
    return merchant_out(row)


@staff_router.post(
    "/invitations/import",
    response_model=ImportReportOut,
    summary="Import the commerce bureau's invitation list (XLSX or CSV as the request body)",
    description="Send the file's bytes as the body; `file_name` tells .xlsx from .csv. Good rows are "
    "invited, every bad row is reported by its row number; the credit code is the key, so importing "
    "the same file again changes nothing.",
    responses={
        **_ACT,
        413: {"description": "payload_too_large"},
        422: {"description": "invalid_invitation_file"},
    },
)
async def import_invitations(
    request: Request,
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    settings: SettingsDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    file_name: Annotated[str, Query(max_length=200, examples=["2022年邀约商家名单.xlsx"])],
) -> ImportReportOut:
    content = await request.body()
    if len(content) > MAX_IMPORT_BYTES:
        raise HuiminError(
            f"the file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB",
            code="payload_too_large",
            status=413,
        )
    report = await flows.import_invitations(
        session,
        principal=principal,
        campaign_id=campaign_id,
        source=content,
        file_name=file_name,
        sealer=service.MerchantSealer.from_settings(settings),
        clock=clock,
    )
    return import_report_out(report)


@staff_router.post(
    "/final-list",
    response_model=PublishOut,
    summary="Publish the city's final list (市商务局汇总)",
    responses=_ACT,
)
async def publish(body: PublishIn, session: SessionDep, principal: StaffDep, clock: ClockDep) -> PublishOut:
    rows = await service.publish(
        session,
        principal=principal,
        campaign_id=body.campaign_id,
        merchant_ids=body.merchant_ids,
        jurisdiction=body.jurisdiction,
        clock=clock,
    )
    return PublishOut(published=len(rows), merchant_ids=[row.id for row in rows])


@staff_router.get(
    "/final-list.xlsx",
    response_class=Response,
    summary="Export the final list as XLSX: one jurisdiction, or the whole city (a sheet per jurisdiction)",
    responses={200: {"content": {XLSX: {}}}, **_ACT},
)
async def export_final_list(
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
) -> Response:
    export = await flows.export_final_list(
        session, principal=principal, campaign_id=campaign_id, jurisdiction=jurisdiction, clock=clock
    )
    return Response(
        export.content,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(export.file_name)}"},
    )


@staff_router.get(
    "/{merchant_id}",
    response_model=MerchantDetailOut,
    summary="One merchant with its history",
    responses=_ACT,
)
async def get_merchant(merchant_id: str, session: SessionDep, principal: StaffDep) -> MerchantDetailOut:
    return await _detail(session, principal, merchant_id)


async def _detail(session: AsyncSession, principal: Principal, merchant_id: str) -> MerchantDetailOut:
    """Every action answers with the merchant as the caller now sees it, history included."""
    return merchant_detail_out(
        await service.get_merchant(session, principal=principal, merchant_id=merchant_id)
    )


@staff_router.post(
    "/{merchant_id}/application",
    response_model=MerchantDetailOut,
    summary="Complete (or amend, or correct after rejection) the application — operator",
    responses=_ACT,
)
async def apply(
    merchant_id: str,
    body: ApplicationIn,
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> MerchantDetailOut:
    await service.apply(
        session,
        principal=principal,
        merchant_id=merchant_id,
        application=body.application(),
        corrections=body.corrections(),
        sealer=service.MerchantSealer.from_settings(settings),
        clock=clock,
    )
    return await _detail(session, principal, merchant_id)


@staff_router.post(
    "/{merchant_id}/submit",
    response_model=MerchantDetailOut,
    summary="Submit to the county for review — operator",
    responses=_ACT,
)
async def submit(
    merchant_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> MerchantDetailOut:
    await service.submit(session, principal=principal, merchant_id=merchant_id, clock=clock)
    return await _detail(session, principal, merchant_id)


@staff_router.post(
    "/{merchant_id}/review",
    response_model=MerchantDetailOut,
    summary="Approve or reject — the county reviewer of the merchant's jurisdiction",
    responses=_ACT,
)
async def review(
    merchant_id: str, body: ReviewIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> MerchantDetailOut:
    await service.review(
        session,
        principal=principal,
        merchant_id=merchant_id,
        approve=body.decision == "approve",
        reason=body.reason,
        clock=clock,
    )
    return await _detail(session, principal, merchant_id)


@staff_router.post(
    "/{merchant_id}/commitment",
    response_model=MerchantDetailOut,
    summary="Accept the integrity commitment (承诺书): the merchant becomes active",
    responses=_ACT,
)
async def accept_commitment(
    merchant_id: str, body: CommitmentIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> MerchantDetailOut:
    await service.accept_commitment(
        session,
        principal=principal,
        merchant_id=merchant_id,
        version=body.version,
        sha256=body.sha256,
        signatory=body.signatory,
        clock=clock,
    )
    return await _detail(session, principal, merchant_id)


def _sanction_route(action: Action, summary: str) -> None:
    async def act(
        merchant_id: str, body: ReasonIn, session: SessionDep, principal: StaffDep, clock: ClockDep
    ) -> MerchantDetailOut:
        await service.sanction(
            session,
            principal=principal,
            merchant_id=merchant_id,
            action=action,
            reason=body.reason,
            clock=clock,
        )
        return await _detail(session, principal, merchant_id)

    staff_router.add_api_route(
        f"/{{merchant_id}}/{action.value}",
        act,
        methods=["POST"],
        response_model=MerchantDetailOut,
        summary=summary,
        responses=_ACT,
        name=f"merchant_{action.value}",
    )


_sanction_route(Action.SUSPEND, "Suspend an active merchant — city admin")
_sanction_route(Action.REINSTATE, "Reinstate a suspended merchant — city admin")
_sanction_route(
    Action.EXPEL,
    "Expel (取消参与资格): dishonest list, unsettled subsidy frozen, settled subsidy clawed back — city admin",
)


# Console: the dishonest list


@dishonest_router.get("", response_model=list[DishonestEntryOut], summary="The dishonest list (失信名单)")
async def list_dishonest(
    session: SessionDep,
    principal: StaffDep,
    include_delisted: bool = False,
    credit_code: Annotated[str | None, Query(max_length=40)] = None,
) -> list[DishonestEntryOut]:
    rows = await service.list_dishonest(
        session, principal=principal, include_delisted=include_delisted, credit_code=credit_code
    )
    return [dishonest_entry_out(row) for row in rows]


@dishonest_router.post(
    "/{credit_code}/delist",
    response_model=DishonestEntryOut,
    summary="Take a credit code off the dishonest list — city admin",
    responses={404: {"description": "not_dishonest"}, 403: {"description": "forbidden"}},
)
async def delist(
    credit_code: str, body: ReasonIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> DishonestEntryOut:
    row = await service.delist(
        session, principal=principal, credit_code=credit_code, reason=body.reason, clock=clock
    )
    return dishonest_entry_out(row)


router = APIRouter()
router.include_router(public_router)
router.include_router(staff_router)
router.include_router(dishonest_router)
