"""Shapes at the edges of the campaigns package: the campaign file (TOML) and the API answers.

A campaign file is parsed in two steps: pydantic checks the structure and the types (unknown keys,
money written exactly, known terms), then `domain.validate` checks the rules between fields. Both
steps report problems by field path, e.g. `batches[2].threshold`, so an official can fix the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from huimin.campaigns import domain
from huimin.campaigns.models import CampaignRow
from huimin.errors import InvalidInput, Problem
from huimin.kit.clock import local_date, local_datetime, to_local
from huimin.kit.money import Fen, MoneyFormatError, parse_share
from huimin.kit.terms import Category, Jurisdiction, MerchantClass, TermError

__all__ = [
    "CampaignDetail",
    "CampaignFile",
    "CampaignSummary",
    "campaign_detail",
    "campaign_summary",
    "parse_campaign_data",
    "parse_campaign_file",
]


def _yuan(value: Any) -> Fen:
    if isinstance(value, bool):
        raise ValueError("expected an amount of yuan, not true/false")
    if isinstance(value, float):
        raise ValueError(f'write money as a string of yuan such as "{value}", not a floating-point number')
    if isinstance(value, int):
        return Fen.yuan(value)
    if isinstance(value, str):
        try:
            return Fen.parse_yuan(value)
        except MoneyFormatError as error:
            raise ValueError(str(error)) from None
    raise ValueError(f"expected an amount of yuan, got {type(value).__name__}")


def _share(value: Any) -> int:
    try:
        return parse_share(value)
    except (MoneyFormatError, TypeError) as error:
        raise ValueError(str(error)) from None


def _term(kind: type[Category] | type[Jurisdiction] | type[MerchantClass]) -> BeforeValidator:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected a {kind.__name__.lower()} name")
        try:
            return kind.parse(value)
        except TermError as error:
            raise ValueError(str(error)) from None

    return BeforeValidator(parse)


Yuan = Annotated[Fen, PlainValidator(_yuan, json_schema_input_type=str)]
Share = Annotated[int, BeforeValidator(_share)]
CategoryTerm = Annotated[Category, _term(Category)]
JurisdictionTerm = Annotated[Jurisdiction, _term(Jurisdiction)]
MerchantClassTerm = Annotated[MerchantClass, _term(MerchantClass)]

_WEEKDAYS = {
    **{
        name: index
        for index, name in enumerate(
            ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        )
    },
    **{f"周{char}": index for index, char in enumerate("一二三四五六日")},
    **{f"星期{char}": index for index, char in enumerate("一二三四五六日")},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Limits(_Strict):
    per_person_total: StrictInt | None = None
    per_person_per_category: dict[CategoryTerm, StrictInt] = Field(default_factory=dict)


class _CampaignSection(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    starts_on: date | None = None
    ends_on: date | None = None
    # A sandbox campaign's dates count from the moment it is loaded: it starts that day, lasts
    # `lasts_days`, its schedules say "in N minutes", and its code gets the load time as a suffix.
    relative: StrictBool = False
    lasts_days: StrictInt | None = Field(default=None, ge=1, le=366)
    budget: Yuan
    limits: _Limits = _Limits()

    @model_validator(mode="after")
    def _dates_or_relative(self) -> _CampaignSection:
        if self.relative:
            if self.starts_on is not None or self.ends_on is not None or self.lasts_days is None:
                raise ValueError("a relative campaign gives `lasts_days` instead of starts_on and ends_on")
        elif self.starts_on is None or self.ends_on is None:
            raise ValueError("give starts_on and ends_on (or relative = true with lasts_days)")
        return self


class _Funder(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)
    kind: domain.FunderKind
    budget: Yuan


class _Scope(_Strict):
    categories: list[CategoryTerm]
    jurisdictions: list[JurisdictionTerm] = Field(default_factory=list)
    merchant_classes: list[MerchantClassTerm] = Field(default_factory=list)


class _BatchLimits(_Strict):
    per_person_per_round: StrictInt = 1
    per_person_total: StrictInt | None = None
    per_merchant_daily: StrictInt | None = None


class _Validity(_Strict):
    days_after_claim: StrictInt | None = None
    same_day: StrictBool = False
    until: date | None = None

    def to_domain(self) -> domain.Validity:
        chosen = [self.days_after_claim is not None, self.same_day, self.until is not None]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of days_after_claim, same_day = true, until")
        if self.days_after_claim is not None:
            return domain.Validity(domain.ValidityKind.DAYS_AFTER_CLAIM, days=self.days_after_claim)
        if self.same_day:
            return domain.Validity(domain.ValidityKind.SAME_DAY)
        return domain.Validity(domain.ValidityKind.UNTIL, until=self.until)


class _Tier(_Strict):
    min_price: Yuan
    max_price: Yuan | None = None
    face_value: Yuan


class _Batch(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)
    issuer: domain.Issuer = domain.Issuer.GOVERNMENT
    kind: domain.BatchKind
    face_value: Yuan | None = None
    threshold: Yuan = Fen(0)
    percent: Share | None = None
    cap: Yuan | None = None
    tiers: list[_Tier] = Field(default_factory=list)
    scope: _Scope
    limits: _BatchLimits = _BatchLimits()
    validity: _Validity
    refund_policy: domain.RefundPolicy = domain.RefundPolicy.RESTORE_ON_FULL_REFUND
    funding: dict[str, Share]
    members_only: StrictBool | None = None  # defaults to true for union 普惠券
    big_ticket: StrictBool = False
    threshold_after_discount: StrictBool = True

    @field_validator("validity")
    @classmethod
    def _one_validity(cls, value: _Validity) -> _Validity:
        value.to_domain()
        return value

    def to_domain(self) -> domain.Batch:
        return domain.Batch(
            code=self.code,
            name=self.name,
            issuer=self.issuer,
            kind=self.kind,
            scope=domain.Scope(
                categories=frozenset(self.scope.categories),
                jurisdictions=frozenset(self.scope.jurisdictions),
                merchant_classes=frozenset(self.scope.merchant_classes),
            ),
            validity=self.validity.to_domain(),
            funding=tuple(domain.FundingShare(code, share) for code, share in self.funding.items()),
            face_value=self.face_value,
            threshold=self.threshold,
            percent_bp=self.percent,
            cap=self.cap,
            tiers=tuple(
                domain.PriceTier(tier.min_price, tier.max_price, tier.face_value) for tier in self.tiers
            ),
            per_person_per_round=self.limits.per_person_per_round,
            per_person_total=self.limits.per_person_total,
            per_merchant_daily=self.limits.per_merchant_daily,
            refund_policy=self.refund_policy,
            members_only=self.issuer is domain.Issuer.UNION
            if self.members_only is None
            else self.members_only,
            big_ticket=self.big_ticket,
            threshold_after_discount=self.threshold_after_discount,
        )


class _Schedule(_Strict):
    """A rule that produces rounds: once, every day or every week at a wall-clock time (Asia/Shanghai);
    or, in a relative (sandbox) campaign, every few minutes from the moment the file is loaded."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    mode: domain.ClaimMode = domain.ClaimMode.FIRST_COME
    every: Literal["once", "day", "week", "minutes"] = "once"
    weekday: str | None = None
    at: time | None = None
    first: date | None = None
    last: date | None = None
    window_hours: StrictInt = Field(default=12, ge=1, le=24 * 14)
    starts_in_minutes: StrictInt | None = Field(default=None, ge=0)
    interval_minutes: StrictInt | None = Field(default=None, ge=1)
    window_minutes: StrictInt | None = Field(default=None, ge=1)
    count: StrictInt | None = Field(default=None, ge=1, le=10_000)
    stock: dict[str, StrictInt]

    @field_validator("weekday")
    @classmethod
    def _known_weekday(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in _WEEKDAYS:
            raise ValueError(f'unknown weekday {value!r}: write e.g. "friday" or "周五"')
        return value

    def dates(self) -> list[date]:
        if self.at is None or self.first is None:
            raise ValueError("give `at` and `first`")
        if self.every == "once":
            if self.last is not None or self.weekday is not None:
                raise ValueError("a one-off schedule takes only `first`")
            return [self.first]
        if self.last is None:
            raise ValueError(f"a schedule that repeats every {self.every} needs `last`")
        if self.last < self.first:
            raise ValueError(f"`last` {self.last} is before `first` {self.first}")
        if self.every == "day":
            if self.weekday is not None:
                raise ValueError("a daily schedule takes no `weekday`")
            step, day = timedelta(days=1), self.first
        else:
            if self.weekday is None:
                raise ValueError("a weekly schedule needs `weekday`")
            step = timedelta(days=7)
            day = self.first + timedelta(days=(_WEEKDAYS[self.weekday.lower()] - self.first.weekday()) % 7)
        days = []
        while day <= self.last:
            days.append(day)
            day += step
        return days

    def relative_rounds(self, index: int, now: datetime) -> list[domain.Round]:
        counts = (self.starts_in_minutes, self.interval_minutes, self.window_minutes, self.count)
        if self.every != "minutes" or None in counts:
            raise ValueError(
                'a relative campaign\'s schedule is every = "minutes" with starts_in_minutes, '
                "interval_minutes, window_minutes and count"
            )
        starts, interval, window, count = (value or 0 for value in counts)
        base = now.replace(second=0, microsecond=0) + timedelta(minutes=1 + starts)  # the next whole minute
        rounds = []
        for number in range(count):
            opens_at = base + timedelta(minutes=number * interval)
            rounds.append(
                domain.Round(
                    code=f"{self.code}-{to_local(opens_at):%Y%m%d%H%M}",
                    mode=self.mode,
                    opens_at=opens_at,
                    closes_at=opens_at + timedelta(minutes=window),
                    stock=dict(self.stock),
                    schedule_index=index,
                )
            )
        return rounds

    def to_rounds(self, index: int) -> list[domain.Round]:
        if self.every == "minutes":
            raise ValueError('every = "minutes" is for relative (sandbox) campaigns only')
        assert self.at is not None  # noqa: S101 (dates() has checked it)
        rounds = []
        for day in self.dates():
            opens_at = local_datetime(day, self.at)
            rounds.append(
                domain.Round(
                    code=f"{self.code}-{day:%Y%m%d}",
                    mode=self.mode,
                    opens_at=opens_at,
                    closes_at=opens_at + timedelta(hours=self.window_hours),
                    stock=dict(self.stock),
                    schedule_index=index,
                )
            )
        return rounds


class CampaignFile(_Strict):
    campaign: _CampaignSection
    funders: list[_Funder]
    batches: list[_Batch]
    schedules: list[_Schedule] = Field(default_factory=list)

    def to_domain(self, now: datetime | None = None) -> domain.Campaign:
        """The campaign; `now` is the moment a relative (sandbox) campaign is loaded."""
        section = self.campaign
        if section.relative and now is None:
            raise ValueError("a relative campaign needs the time it is loaded")
        problems: list[Problem] = []
        rounds: list[domain.Round] = []
        seen: set[str] = set()
        for index, schedule in enumerate(self.schedules):
            if schedule.code in seen:
                problems.append(
                    Problem(f"schedules[{index}].code", f"schedule code {schedule.code!r} is used twice")
                )
            seen.add(schedule.code)
            try:
                if section.relative and now is not None:
                    rounds += schedule.relative_rounds(index, now)
                else:
                    rounds += schedule.to_rounds(index)
            except ValueError as error:
                problems.append(Problem(f"schedules[{index}]", str(error)))
        if problems:
            raise _invalid(problems)
        code, starts_on, ends_on = section.code, section.starts_on, section.ends_on
        if section.relative and now is not None:
            code = f"{section.code}-{to_local(now):%Y%m%d%H%M%S}"
            starts_on = local_date(now)
            ends_on = starts_on + timedelta(days=(section.lasts_days or 1) - 1)
        if starts_on is None or ends_on is None:  # pragma: no cover - the section's validator refuses it
            raise ValueError("a campaign needs its dates")
        return domain.Campaign(
            code=code,
            name=section.name,
            description=section.description,
            starts_on=starts_on,
            ends_on=ends_on,
            budget=section.budget,
            funders=tuple(
                domain.Funder(code=f.code, name=f.name, kind=f.kind, budget=f.budget) for f in self.funders
            ),
            batches=tuple(batch.to_domain() for batch in self.batches),
            rounds=tuple(rounds),
            limits=domain.CampaignLimits(
                per_person_total=section.limits.per_person_total,
                per_person_per_category=dict(section.limits.per_person_per_category),
            ),
        )


def source_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_campaign_file(text: str, *, now: datetime | None = None) -> domain.Campaign:
    """Parse and validate a campaign file; raise `InvalidInput` (code `invalid_campaign`) naming every bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _invalid([Problem("file", f"not valid TOML: {error}")]) from None
    return parse_campaign_data(data, now=now)


def parse_campaign_data(data: dict[str, Any], *, now: datetime | None = None) -> domain.Campaign:
    """Validate the decoded content of a campaign file (structure and types first, then the rules)."""
    try:
        parsed = CampaignFile.model_validate(data)
    except ValidationError as error:
        raise _invalid([Problem(_path(item["loc"]), _message(item)) for item in error.errors()]) from None
    campaign = parsed.to_domain(now)
    problems = domain.validate(campaign)
    if problems:
        raise _invalid(problems)
    return campaign


def _invalid(problems: list[Problem]) -> InvalidInput:
    return InvalidInput(problems, code="invalid_campaign", summary="the campaign file is invalid")


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in ("str", "int", "bool", "date", "time", "none", "[key]"):
            continue  # pydantic's names for union members and validators are not fields
        else:
            path += f".{part}" if path else part
    return path or "file"


def _message(item: Any) -> str:
    message = str(item["msg"])
    prefix = "Value error, "
    message = message.removeprefix(prefix)
    if item["type"] == "extra_forbidden":
        return "unknown field (check its spelling)"
    if item["type"] == "missing":
        return "required field is missing"
    return message


# --- API answers -----------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FunderOut(_Out):
    code: str
    name: str
    kind: domain.FunderKind
    budget_fen: int


class CampaignSummary(_Out):
    id: str
    code: str
    name: str
    description: str
    starts_on: date
    ends_on: date
    budget_fen: int
    funders: list[FunderOut]


class TierOut(_Out):
    min_price_fen: int
    max_price_fen: int | None
    face_value_fen: int


class BatchOut(_Out):
    id: str
    code: str
    name: str
    issuer: domain.Issuer
    kind: domain.BatchKind
    face_value_fen: int | None
    threshold_fen: int
    percent_bp: int | None
    cap_fen: int | None
    tiers: list[TierOut]
    categories: list[Category]
    jurisdictions: list[Jurisdiction]
    merchant_classes: list[MerchantClass]
    per_person_per_round: int
    per_person_total: int | None
    validity_kind: domain.ValidityKind
    validity_days: int | None
    validity_until: date | None
    refund_policy: domain.RefundPolicy
    members_only: bool
    big_ticket: bool
    funding: dict[str, int] = Field(description="funder code -> share in basis points (10000 = 100 %)")


class RoundStockOut(_Out):
    batch_code: str
    stock: int


class RoundOut(_Out):
    id: str
    code: str
    mode: domain.ClaimMode
    opens_at: datetime
    closes_at: datetime
    stock: list[RoundStockOut]


class CampaignDetail(CampaignSummary):
    batches: list[BatchOut]
    rounds: list[RoundOut]


def campaign_summary(row: CampaignRow) -> CampaignSummary:
    return CampaignSummary.model_validate(row)


def campaign_detail(row: CampaignRow) -> CampaignDetail:
    summary = campaign_summary(row)
    return CampaignDetail(
        **summary.model_dump(),
        batches=[
            BatchOut.model_validate(
                {
                    **{
                        column: getattr(batch, column)
                        for column in BatchOut.model_fields
                        if column != "funding"
                    },
                    "funding": {share.funder.code: share.share_bp for share in batch.funding},
                }
            )
            for batch in row.batches
        ],
        rounds=[
            RoundOut(
                id=round_.id,
                code=round_.code,
                mode=domain.ClaimMode(round_.mode),
                opens_at=round_.opens_at,
                closes_at=round_.closes_at,
                stock=[
                    RoundStockOut(batch_code=item.batch.code, stock=item.stock)
                    for item in sorted(round_.stock, key=lambda item: item.batch.position)
                ],
            )
            for round_ in row.rounds
        ],
    )
