"""API shapes of claims, rounds and the wallet."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from huimin.campaigns.domain import BatchKind, ClaimMode
from huimin.campaigns.models import BatchRow
from huimin.claims.domain import RoundStatus, VoucherStatus, format_code, qr_payload
from huimin.claims.models import VoucherRow
from huimin.claims.service import RoundBoard

__all__ = ["ClaimIn", "LocationIn", "RoundOut", "VoucherOut", "round_out", "voucher_out"]


class LocationIn(BaseModel):
    """The device's location at the moment of claiming."""

    model_config = ConfigDict(extra="forbid")

    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    crs: Literal["wgs84", "gcj02"] = Field(
        description="coordinate system: GPS (wgs84) or the Chinese map datum (gcj02)"
    )


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resident_id: str = Field(min_length=1, max_length=32)
    batch_id: str = Field(min_length=1, max_length=32)
    location: LocationIn


class VoucherOut(BaseModel):
    voucher_id: str
    code: str = Field(
        description="what the till scans or the cashier types; 16 characters and a check symbol"
    )
    code_display: str = Field(description="the code grouped for reading: XXXX-XXXX-XXXX-XXXX-C")
    qr_payload: str
    batch_id: str
    batch_code: str
    batch_name: str
    kind: BatchKind
    face_value_fen: int | None
    threshold_fen: int
    max_value_fen: int
    status: VoucherStatus
    claimed_at: datetime
    valid_until: datetime


class RoundBatchOut(BaseModel):
    batch_id: str
    batch_code: str
    batch_name: str
    released: int
    remaining: int


class RoundOut(BaseModel):
    round_id: str
    campaign_id: str
    code: str
    mode: ClaimMode
    status: RoundStatus
    opens_at: datetime
    closes_at: datetime
    batches: list[RoundBatchOut]


def voucher_out(voucher: VoucherRow, batch: BatchRow) -> VoucherOut:
    return VoucherOut(
        voucher_id=voucher.id,
        code=voucher.code,
        code_display=format_code(voucher.code),
        qr_payload=qr_payload(voucher.code),
        batch_id=batch.id,
        batch_code=batch.code,
        batch_name=batch.name,
        kind=BatchKind(batch.kind),
        face_value_fen=batch.face_value_fen,
        threshold_fen=batch.threshold_fen,
        max_value_fen=batch.max_value_fen,
        status=VoucherStatus(voucher.status),
        claimed_at=voucher.claimed_at,
        valid_until=voucher.valid_until,
    )


def round_out(board: RoundBoard) -> RoundOut:
    round_ = board.round
    return RoundOut(
        round_id=round_.id,
        campaign_id=round_.campaign_id,
        code=round_.code,
        mode=ClaimMode(round_.mode),
        status=board.status,
        opens_at=round_.opens_at,
        closes_at=round_.closes_at,
        batches=[
            RoundBatchOut(
                batch_id=batch.id,
                batch_code=batch.code,
                batch_name=batch.name,
                released=released.stock,
                remaining=left,
            )
            for released, batch, left in board.stock
        ],
    )


class EntryIn(ClaimIn):
    """A lottery entry: the same shape as a claim."""


class EntryOut(BaseModel):
    entry_id: str
    round_id: str
    batch_id: str
    entered_at: datetime
    seed_sha256: str = Field(description="SHA-256 of the draw's seed, fixed before registration closes")


class LotteryWinnerOut(BaseModel):
    batch_code: str
    rank: int
    phone_masked: str


class LotteryOut(BaseModel):
    """The public record of a lottery round (摇号公示)."""

    round_id: str
    code: str
    status: Literal["not_committed", "registering", "awaiting_draw", "drawn"]
    seed_sha256: str | None
    seed: str | None = Field(description="revealed at the draw")
    entries: int
    entries_sha256: str | None
    drawn_at: datetime | None
    winners: list[LotteryWinnerOut]
