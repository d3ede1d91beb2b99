"""Resident registration by the payment app (signed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from huimin.deps import AppPartnerDep, ClockDep, SessionDep, SettingsDep
from huimin.eligibility import service
from huimin.eligibility.schemas import ResidentIn, ResidentOut

router = APIRouter(prefix="/api/v1", tags=["residents"])


@router.post(
    "/residents",
    status_code=201,
    response_model=ResidentOut,
    summary="Register an app user as a resident (201), or refresh a known one (200)",
    responses={
        409: {"description": "identity_conflict, resident_identity_mismatch"},
        422: {"description": "invalid_resident"},
    },
)
async def register(
    body: ResidentIn, partner: AppPartnerDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> JSONResponse:
    registration = await service.register_resident(
        session, partner_id=partner.id, data=body, hasher=settings.hasher, clock=clock
    )
    row = registration.resident
    out = ResidentOut(
        resident_id=row.id,
        app_user_id=row.app_user_id,
        real_name_verified=row.real_name_verified,
        id_number_masked=row.id_number_masked,
        phone_masked=row.phone_masked,
        registered_at=row.registered_at,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if registration.created else 200)
