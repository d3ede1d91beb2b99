"""Announcements and activity rules (公告, 活动规则) as pure rules. Seed 六(二): the publicity department
runs the campaign's publicity and answers public concerns; what it publishes is shown to residents.

    draft ─publish─▶ published ─unpublish─▶ withdrawn ─publish─▶ published

A published announcement is public from its `published_at` (which may be set ahead: scheduled).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from huimin.errors import ConflictError, HuiminError, Problem

__all__ = [
    "TRANSITIONS",
    "Action",
    "AnnouncementKind",
    "AnnouncementStatus",
    "content_problems",
    "is_public",
    "next_status",
]

TITLE_MAX_LENGTH = 200
BODY_MAX_LENGTH = 20_000


class AnnouncementKind(StrEnum):
    ANNOUNCEMENT = "announcement"  # 公告
    RULES = "rules"  # 活动规则

    @property
    def label(self) -> str:
        return "公告" if self is AnnouncementKind.ANNOUNCEMENT else "活动规则"


class AnnouncementStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Action(StrEnum):
    PUBLISH = "publish"
    UNPUBLISH = "unpublish"


S = AnnouncementStatus
TRANSITIONS: dict[Action, tuple[frozenset[AnnouncementStatus], AnnouncementStatus]] = {
    Action.PUBLISH: (frozenset({S.DRAFT, S.WITHDRAWN}), S.PUBLISHED),
    Action.UNPUBLISH: (frozenset({S.PUBLISHED}), S.WITHDRAWN),
}


def next_status(current: AnnouncementStatus, action: Action) -> AnnouncementStatus:
    sources, target = TRANSITIONS[action]
    if current not in sources:
        raise invalid_transition(current, action)
    return target


def invalid_transition(current: AnnouncementStatus, action: Action) -> HuiminError:
    return ConflictError(
        f"an announcement that is {current.value} cannot be {action.value}ed", code="invalid_transition"
    )


def is_public(status: AnnouncementStatus, published_at: datetime | None, now: datetime) -> bool:
    return status is AnnouncementStatus.PUBLISHED and published_at is not None and published_at <= now


def content_problems(title: str, body: str) -> list[Problem]:
    problems = []
    if not title.strip() or len(title.strip()) > TITLE_MAX_LENGTH:
        problems.append(Problem("title", f"1 to {TITLE_MAX_LENGTH} characters"))
    if not body.strip() or len(body) > BODY_MAX_LENGTH:
        problems.append(Problem("body", f"1 to {BODY_MAX_LENGTH} characters"))
    return problems
