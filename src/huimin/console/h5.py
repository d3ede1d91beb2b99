"""The resident page (`/h5`): public, without sign-in, mobile-first, Chinese by default.

It shows what the public API already publishes (the announcements of the publicity department, the
campaign, its rounds with their live remaining stock, the activity rules, the active merchants by
category and district), rendered by the server
so that it works on the slowest phone and without script; a small script counts down to the next
release and refreshes the stock from `/api/v1/rounds`. This public page does not claim, and says so:
residents claim in the payment app, through the signed partner API or on their own page inside the app
(`resident_pages`, opened by the app's signed link).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.announcements import service as announcements
from huimin.campaigns import service as campaigns
from huimin.campaigns.domain import BatchKind, ValidityKind
from huimin.campaigns.models import BatchRow, CampaignRow
from huimin.claims import service as claims
from huimin.claims.domain import RoundStatus
from huimin.claims.service import RoundBoard
from huimin.console.i18n import Translator
from huimin.console.service import choose_campaign
from huimin.console.web import H5_PREFIX, page_count, parse_term, render, translator
from huimin.deps import ClockDep, SessionDep
from huimin.kit.money import Fen
from huimin.kit.terms import Category, District, Jurisdiction
from huimin.merchants import service as merchants
from huimin.merchants.models import MerchantRow
from huimin.merchants.service import Page

__all__ = ["batch_rules", "router"]

router = APIRouter(prefix=H5_PREFIX, include_in_schema=False)

PAGE_SIZE = 20
NOTICES = 5  # the newest announcements shown
UPCOMING = 4  # rounds shown ahead; the rest of the schedule is folded away


@dataclass(frozen=True)
class BatchRules:
    batch: BatchRow
    value: str  # 满100减30, 立减30元, 9折 最高减50元, …
    validity: str
    scope: str
    limit: str


def _yuan(fen: int) -> str:
    yuan, cents = divmod(fen, 100)
    return f"{yuan:,}" if cents == 0 else f"{yuan:,}.{cents:02d}"


def batch_rules(batch: BatchRow, t: Translator) -> BatchRules:
    """A batch's rules in a resident's words, from the batch's own terms."""
    match BatchKind(batch.kind):
        case BatchKind.THRESHOLD:
            value = t(
                "h5.rule.threshold",
                threshold=_yuan(batch.threshold_fen),
                value=_yuan(batch.face_value_fen or 0),
            )
        case BatchKind.FIXED:
            value = t("h5.rule.fixed", value=_yuan(batch.face_value_fen or 0))
        case BatchKind.PERCENTAGE:
            percent = batch.percent_bp or 0
            off = (
                f"{percent // 100}"
                if percent % 100 == 0
                else f"{percent // 100}.{percent % 100:02d}".rstrip("0")
            )
            value = t("h5.rule.percentage", percent=off, cap=_yuan(batch.cap_fen or 0))
        case BatchKind.TIERED:
            values = sorted(int(tier.get("face_value_fen", 0)) for tier in batch.tiers) or [
                batch.max_value_fen
            ]
            value = t("h5.rule.tiered", low=_yuan(values[0]), high=_yuan(values[-1]))
    match ValidityKind(batch.validity_kind):
        case ValidityKind.DAYS_AFTER_CLAIM:
            validity = t("h5.validity.days", days=batch.validity_days or 0)
        case ValidityKind.SAME_DAY:
            validity = t("h5.validity.same_day")
        case ValidityKind.UNTIL:
            validity = t("h5.validity.until", day=str(batch.validity_until))
    scope = "、".join(t.term("category", code) for code in batch.categories)
    if batch.jurisdictions:
        scope += t(
            "app.parenthesised", text="、".join(t.term("jurisdiction", code) for code in batch.jurisdictions)
        )
    return BatchRules(
        batch=batch,
        value=value,
        validity=validity,
        scope=scope,
        limit=t("h5.limit", count=batch.per_person_per_round),
    )


@dataclass(frozen=True)
class Schedule:
    current: list[RoundBoard]  # open now, or sold out while its window lasts
    upcoming: list[RoundBoard]
    later: list[RoundBoard]
    past: list[RoundBoard]
    next_release: datetime | None


def _schedule(boards: list[RoundBoard], now: datetime) -> Schedule:
    current = [board for board in boards if board.round.opens_at <= now < board.round.closes_at]
    ahead = sorted((board for board in boards if board.round.opens_at > now), key=lambda b: b.round.opens_at)
    past = [board for board in boards if board.round.closes_at <= now]
    return Schedule(
        current=current,
        upcoming=ahead[:UPCOMING],
        later=ahead[UPCOMING:],
        past=sorted(past, key=lambda board: board.round.opens_at, reverse=True),
        next_release=ahead[0].round.opens_at if ahead else None,
    )


async def _merchants(
    session: AsyncSession,
    campaign: CampaignRow,
    category: Category | None,
    district: District | None,
    page: int,
) -> Page[MerchantRow]:
    jurisdictions = frozenset(
        item for item in Jurisdiction if district is not None and item.district is district
    )
    return await merchants.public_merchants(
        session,
        campaign_id=campaign.id,
        category=category,
        jurisdictions=jurisdictions,
        page=page,
        page_size=PAGE_SIZE,
    )


@router.get("")
async def resident_page(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    district: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    t = translator(request)
    now = clock.now()
    chosen_category = parse_term(Category, "category", category)
    chosen_district = parse_term(District, "district", district)
    known = await campaigns.list_campaigns(session)
    chosen = choose_campaign(known, campaign_id, now)
    # 公告: what is published and due, of the campaign shown or of the whole platform
    public = await announcements.public_announcements(session, clock=clock, page_size=20)
    notices = [row for row in public.items if row.campaign_id in (None, chosen.id if chosen else None)]
    context: dict[str, object] = {"campaign": None, "now": now, "notices": notices[:NOTICES]}
    if chosen is not None:
        campaign = await campaigns.get_campaign(session, campaign_id=chosen.id)
        boards = list(await claims.list_rounds(session, clock=clock, campaign_id=campaign.id))
        found = await _merchants(session, campaign, chosen_category, chosen_district, page)
        filters = {"category": category or "", "district": district or ""}
        context = {
            "campaign": campaign,
            "now": now,
            "notices": notices[:NOTICES],
            "rules": [batch_rules(batch, t) for batch in campaign.batches],
            "schedule": _schedule(boards, now),
            "open_status": RoundStatus.OPEN.value,
            "merchants": found,
            "pages": page_count(found.total, PAGE_SIZE),
            "categories": list(Category),
            "districts": list(District),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
            "max_value": Fen(max((batch.max_value_fen for batch in campaign.batches), default=0)),
        }
    return render(request, "h5.html", context)
