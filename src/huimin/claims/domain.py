"""Pure rules of claiming: voucher codes, validity, round status, the refusals and their codes."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from huimin.campaigns.domain import ValidityKind
from huimin.errors import ConflictError, HuiminError, NotFound
from huimin.kit.clock import local_date, local_datetime
from huimin.kit.ids import CROCKFORD

__all__ = [
    "ClaimRefused",
    "RoundStatus",
    "VoucherStatus",
    "batch_scope",
    "campaign_scope",
    "category_scope",
    "code_is_well_formed",
    "format_code",
    "new_voucher_code",
    "normalise_code",
    "qr_payload",
    "round_scope",
    "round_status",
    "valid_until",
]

_CODE_BODY = 16  # 16 Crockford base32 characters = 80 random bits
_CHECK_ALPHABET = CROCKFORD + "*~$=U"  # Crockford's 37 check symbols (mod 37)


class VoucherStatus(StrEnum):
    CLAIMED = "claimed"
    REDEEMED = "redeemed"
    SETTLED = "settled"
    EXPIRED = "expired"
    RECYCLED = "recycled"
    REVERSED = "reversed"
    REVOKED = "revoked"


class RoundStatus(StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


class ClaimRefused:
    """The refusals of a claim, each with its stable code and status (issue: claims)."""

    @staticmethod
    def sold_out() -> HuiminError:
        return ConflictError("this batch is sold out in this round", code="sold_out")

    @staticmethod
    def round_not_open(opens_at: datetime, closes_at: datetime, now: datetime) -> HuiminError:
        when = "opens" if now < opens_at else "closed"
        instant = opens_at if now < opens_at else closes_at
        # Not final: the same request may succeed once the round opens.
        return HuiminError(
            f"this round {when} at {instant.isoformat()}",
            code="round_not_open",
            status=409,
            final=now >= closes_at,
        )

    @staticmethod
    def limit_reached(what: str) -> HuiminError:
        return ConflictError(f"limit reached: {what}", code="limit_reached")

    @staticmethod
    def not_eligible_location() -> HuiminError:
        return HuiminError("the claim location is outside Ziyang", code="not_eligible_location", status=403)

    @staticmethod
    def not_union_member() -> HuiminError:
        return HuiminError(
            "this batch is for trade-union members only (工会会员)", code="not_union_member", status=403
        )

    @staticmethod
    def identity_unverified() -> HuiminError:
        return HuiminError(
            "the resident's real name is not verified (实名认证)", code="identity_unverified", status=403
        )

    @staticmethod
    def blocked() -> HuiminError:
        return HuiminError(
            "this person or device is blocked from claiming in this campaign (risk case sanction)",
            code="claims_blocked",
            status=403,
        )

    @staticmethod
    def unknown_round(round_id: str) -> HuiminError:
        return NotFound(f"no round {round_id!r}", code="unknown_round")

    @staticmethod
    def unknown_batch(batch_id: str) -> HuiminError:
        return NotFound(f"no batch {batch_id!r} in this round", code="unknown_batch")

    @staticmethod
    def wrong_mode() -> HuiminError:
        return HuiminError(
            "this is a lottery round: register an entry instead", code="lottery_round", status=409
        )


def round_status(opens_at: datetime, closes_at: datetime, remaining: int, now: datetime) -> RoundStatus:
    if now < opens_at:
        return RoundStatus.SCHEDULED
    if now >= closes_at:
        return RoundStatus.CLOSED
    return RoundStatus.OPEN if remaining > 0 else RoundStatus.SOLD_OUT


def valid_until(
    claimed_at: datetime,
    *,
    kind: ValidityKind,
    days: int | None,
    until: date | None,
    campaign_closes_at: datetime,
) -> datetime:
    """The instant a voucher stops being valid (exclusive), at a local midnight, never after the campaign.

    "N days after claim" counts the day of the claim as the first day: claimed Friday 10:00 with 7 days,
    valid until the end of Thursday.
    """
    claim_day = local_date(claimed_at)
    if kind is ValidityKind.DAYS_AFTER_CLAIM:
        end = claim_day + timedelta(days=days or 1)
    elif kind is ValidityKind.SAME_DAY:
        end = claim_day + timedelta(days=1)
    else:
        end = (until or claim_day) + timedelta(days=1)
    return min(local_datetime(end, time(0)), campaign_closes_at)


def _check_symbol(body: str) -> str:
    value = 0
    for char in body:
        value = value * 32 + CROCKFORD.index(char)
    return _CHECK_ALPHABET[value % 37]


def new_voucher_code() -> str:
    """16 random Crockford characters (80 bits) and a mod-37 check symbol: unguessable, and a typo at
    the till is caught before any lookup."""
    bits = secrets.randbits(5 * _CODE_BODY)  # one draw from the OS, not one per character
    body = "".join(CROCKFORD[(bits >> (5 * index)) & 31] for index in range(_CODE_BODY))
    return body + _check_symbol(body)


def normalise_code(text: str) -> str:
    """What a cashier types: dashes and spaces dropped, upper-cased, I/L read as 1 and O as 0."""
    # I, L and O are in neither the code alphabet nor the check symbols, so reading them as digits is safe
    return "".join(char for char in text.upper() if char not in " -").translate(str.maketrans("ILO", "110"))


def code_is_well_formed(code: str) -> bool:
    body, check = code[:-1], code[-1:]
    return (
        len(body) == _CODE_BODY and all(char in CROCKFORD for char in body) and check == _check_symbol(body)
    )


def format_code(code: str) -> str:
    """Grouped for reading aloud: XXXX-XXXX-XXXX-XXXX-C."""
    return "-".join(code[index : index + 4] for index in range(0, _CODE_BODY, 4)) + "-" + code[_CODE_BODY:]


def qr_payload(code: str) -> str:
    return f"HUIMIN:V1:{code}"


# The scopes of the per-person claim counters (`claim_counters.scope`, and express claims' count hashes):
# one per limit a voucher counts against.


def round_scope(round_id: str, batch_id: str) -> str:
    """The per-round limit of a batch: `r:<round>:b:<batch>`."""
    return f"r:{round_id}:b:{batch_id}"


def batch_scope(batch_id: str) -> str:
    return f"b:{batch_id}"


def campaign_scope(campaign_id: str) -> str:
    return f"c:{campaign_id}"


def category_scope(campaign_id: str, category: str) -> str:
    """`c:<campaign>:cat:<category>`; `category_scope(campaign, "%")` is the LIKE pattern of them all."""
    return f"c:{campaign_id}:cat:{category}"
