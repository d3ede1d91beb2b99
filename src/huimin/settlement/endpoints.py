"""HTTP for settlement (console users): `/api/v1/staff/settlement`.

The operator prepares runs, imports the bank's confirmations and requests the recovery; the finance
bureau approves runs and the recovery, or returns (退回) a run with a reason; the clearing file (with clear bank accounts, for the bank) is
downloaded by the operator or finance. Idempotent by their business keys: preparing a day again
answers the same run, a bank file applies each payout once, a campaign has one recovery.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from huimin.deps import ClockDep, SessionDep, SettingsDep, StaffDep
from huimin.kit.sealing import Sealer
from huimin.merchants.service import MerchantSealer
from huimin.settlement import service
from huimin.settlement.reconcile import reconcile
from huimin.settlement.schemas import (
    BankImportOut,
    PrepareIn,
    ReconciliationOut,
    RecoveryIn,
    RecoveryOut,
    ReturnIn,
    RunDetailOut,
    RunOut,
    StatementOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/staff/settlement", tags=["settlement (console)"])

_STAFF: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden, csrf_failed, maker_checker"},
    404: {"description": "unknown_run, unknown_campaign, unknown_recovery"},
    409: {
        "description": "day_not_due, run_open, run_not_prepared, already_approved, recovery_not_ready, recovery_stale"
    },
}
_MAX_BANK_FILE = 20 * 1024 * 1024


def _sealer(settings: Any) -> Sealer:
    return MerchantSealer.from_settings(settings).bank_account


@router.get("/runs", response_model=list[RunOut], summary="Settlement runs", responses=_STAFF)
async def list_runs(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    business_day: date | None = None,
) -> list[RunOut]:
    rows = await service.list_runs(session, principal=principal, campaign_id=campaign_id, day=business_day)
    return [RunOut.of(row) for row in rows]


@router.post(
    "/runs", status_code=201, response_model=RunOut, summary="Prepare a day's run (maker)", responses=_STAFF
)
async def prepare(body: PrepareIn, session: SessionDep, principal: StaffDep, clock: ClockDep) -> RunOut:
    run = await service.prepare(
        session, principal=principal, campaign_id=body.campaign_id, day=body.business_day, clock=clock
    )
    return RunOut.of(run)


@router.get("/runs/{run_id}", response_model=RunDetailOut, summary="A run with its payouts", responses=_STAFF)
async def get_run(run_id: str, session: SessionDep, principal: StaffDep) -> RunDetailOut:
    return RunDetailOut.detail(await service.get_run(session, principal=principal, run_id=run_id))


@router.post(
    "/runs/{run_id}/approval", response_model=RunOut, summary="Approve a run (checker)", responses=_STAFF
)
async def approve(
    run_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep, settings: SettingsDep
) -> RunOut:
    run = await service.approve(
        session, principal=principal, run_id=run_id, clock=clock, sealer=_sealer(settings)
    )
    return RunOut.of(run)


@router.post(
    "/runs/{run_id}/return",
    response_model=RunOut,
    summary="Return a run to the operator with a reason (checker, 退回)",
    responses={**_STAFF, 422: {"description": "invalid_request, invalid_return_reason"}},
)
async def return_run(
    run_id: str, body: ReturnIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> RunOut:
    run = await service.return_run(
        session, principal=principal, run_id=run_id, reason=body.reason, clock=clock
    )
    return RunOut.of(run)


@router.get(
    "/runs/{run_id}/clearing-file.csv",
    response_class=Response,
    summary="The clearing file for the bank (clear accounts: for the bank only)",
    responses={200: {"content": {"text/csv": {}}}, **_STAFF},
)
async def clearing_file(
    run_id: str, session: SessionDep, principal: StaffDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    found = await service.clearing_file(
        session, principal=principal, run_id=run_id, sealer=_sealer(settings), clock=clock
    )
    return Response(
        found.content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}",
            "X-Content-SHA256": found.sha256,
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/bank-confirmations",
    response_model=BankImportOut,
    summary="Import the bank's confirmation file (CSV as the request body)",
    responses={**_STAFF, 422: {"description": "invalid_bank_file"}},
)
async def import_bank(
    request: Request,
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
) -> BankImportOut:
    content = await request.body()
    if len(content) > _MAX_BANK_FILE:
        from huimin.errors import HuiminError

        raise HuiminError("the bank file is larger than 20 MB", code="payload_too_large", status=413)
    report = await service.import_bank_file(
        session, principal=principal, campaign_id=campaign_id, content=content, clock=clock
    )
    return BankImportOut.of(report)


@router.get(
    "/reconciliation", response_model=ReconciliationOut, summary="Reconcile a business day", responses=_STAFF
)
async def reconciliation(
    session: SessionDep,
    principal: StaffDep,
    settings: SettingsDep,
    day: date,
    campaign_code: Annotated[str | None, Query(max_length=64)] = None,
) -> ReconciliationOut:
    report = await reconcile(
        session, principal=principal, day=day, sealer=_sealer(settings), campaign_code=campaign_code
    )
    return ReconciliationOut.of(report)


@router.post(
    "/recoveries",
    status_code=201,
    response_model=RecoveryOut,
    summary="Request the recovery (maker)",
    responses=_STAFF,
)
async def request_recovery(
    body: RecoveryIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> RecoveryOut:
    row = await service.request_recovery(
        session, principal=principal, campaign_id=body.campaign_id, clock=clock
    )
    return RecoveryOut.of(row)


@router.post(
    "/recoveries/{recovery_id}/approval",
    response_model=RecoveryOut,
    summary="Approve the recovery (checker)",
    responses=_STAFF,
)
async def approve_recovery(
    recovery_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> RecoveryOut:
    row = await service.approve_recovery(session, principal=principal, recovery_id=recovery_id, clock=clock)
    return RecoveryOut.of(row)


@router.get(
    "/statement", response_model=StatementOut, summary="The final statement per funder", responses=_STAFF
)
async def statement(
    session: SessionDep, principal: StaffDep, campaign_id: Annotated[str, Query(max_length=32)]
) -> StatementOut:
    return StatementOut.of(await service.statement(session, principal=principal, campaign_id=campaign_id))
