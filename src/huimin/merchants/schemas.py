"""API shapes of the merchants package. Bodies reject unknown fields; status, ids, actors and roles are
never taken from a client. Bank accounts and phones only ever leave masked (first 3 + last 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from huimin.campaigns.schemas import CategoryTerm, JurisdictionTerm, MerchantClassTerm
from huimin.errors import InvalidInput
from huimin.kit.sheets import RowProblem
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.merchants import domain
from huimin.merchants.domain import Action, MerchantStatus
from huimin.merchants.flows import ImportReport
from huimin.merchants.models import DishonestEntryRow, MerchantRow, MerchantTransitionRow
from huimin.merchants.service import CommitmentText, Corrections, MerchantDetail, Page

__all__ = [
    "ApplicationIn",
    "CommitmentIn",
    "CommitmentTextOut",
    "DishonestEntryOut",
    "ImportReportOut",
    "InvitationIn",
    "MerchantDetailOut",
    "MerchantOut",
    "MerchantPage",
    "PublicMerchantOut",
    "PublicMerchantPage",
    "PublishIn",
    "PublishOut",
    "ReasonIn",
    "ReviewIn",
    "TermOut",
    "commitment_text_out",
    "dishonest_entry_out",
    "import_report_out",
    "merchant_detail_out",
    "merchant_out",
    "merchant_page",
    "parse_invitation",
    "public_merchant_page",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvitationIn(_In):
    """One merchant invited by the city commerce bureau (定向邀约)."""

    campaign_id: str = Field(min_length=1, max_length=32)
    credit_code: str = Field(max_length=40, description="统一社会信用代码, 18 characters")
    legal_name: str = Field(max_length=200)
    jurisdiction: str = Field(
        max_length=20, description="雁江区, 安岳县, 乐至县, 高新区, 临空经济区 (or their codes)"
    )
    category: str = Field(
        max_length=20, description="餐饮, 零售, 住宿, 服务, 批发, 汽车, 家电 (or their codes)"
    )
    merchant_class: str = Field(
        max_length=20, description="服务业规上, 限上, 限下抽样, 重点培育, 商业综合体入驻 (or their codes)"
    )
    registered_address: str = Field(default="", max_length=300)
    contact_name: str = Field(default="", max_length=50)
    contact_phone: str = Field(default="", max_length=24)

    def invitation(self) -> domain.Invitation:
        return parse_invitation(self.model_dump(exclude={"campaign_id"}))


def parse_invitation(fields: dict[str, str]) -> domain.Invitation:
    """An invitation from an official's text (the API body, the CLI's options), or every problem."""
    invitation, problems = domain.invitation_problems(**fields)
    if invitation is None:
        raise InvalidInput(problems, code="invalid_invitation", summary="the invitation is refused")
    return invitation


class ApplicationIn(_In):
    """The application the operator completes with the merchant. The optional fields correct the
    invitation; the credit code never changes (it is the merchant's key)."""

    registered_address: str = Field(max_length=300)
    business_hours: str = Field(max_length=100, examples=["09:00-21:00", "10:00-14:00,17:00-22:00"])
    terminals: list[str] = Field(
        max_length=domain.MAX_TERMINALS, description="till terminal numbers (终端号)"
    )
    bank_name: str = Field(max_length=100, description="开户银行")
    bank_account: str = Field(max_length=40, description="结算账号: stored sealed, answered masked")
    contact_name: str = Field(max_length=50)
    contact_phone: str = Field(max_length=24)
    legal_name: str | None = Field(default=None, max_length=200)
    jurisdiction: JurisdictionTerm | None = None
    category: CategoryTerm | None = None
    merchant_class: MerchantClassTerm | None = None

    def application(self) -> domain.Application:
        return domain.Application(
            registered_address=self.registered_address,
            business_hours=self.business_hours,
            terminals=tuple(self.terminals),
            bank_name=self.bank_name,
            bank_account=self.bank_account,
            contact_name=self.contact_name,
            contact_phone=self.contact_phone,
        )

    def corrections(self) -> Corrections:
        return Corrections(
            legal_name=self.legal_name,
            jurisdiction=self.jurisdiction,
            category=self.category,
            merchant_class=self.merchant_class,
        )


class ReviewIn(_In):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=domain.REASON_MAX_LENGTH, description="required to reject")


class PublishIn(_In):
    """Publish the final list: every county-approved merchant of the campaign (or of one jurisdiction),
    or exactly the merchants named."""

    campaign_id: str = Field(min_length=1, max_length=32)
    jurisdiction: JurisdictionTerm | None = None
    merchant_ids: list[str] | None = Field(default=None, max_length=20_000)


class CommitmentIn(_In):
    """Acceptance of the integrity commitment: the version and SHA-256 of the text the merchant read."""

    version: str = Field(max_length=16, examples=["v1"])
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    signatory: str = Field(max_length=50, description="who signs for the merchant (法定代表人或授权代表)")


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=domain.REASON_MAX_LENGTH)


class TermOut(BaseModel):
    code: str
    label: str


def _term(term: Category | Jurisdiction | District | MerchantClass) -> TermOut:
    return TermOut(code=term.value, label=term.label)


class MerchantOut(BaseModel):
    id: str
    campaign_id: str
    credit_code: str
    legal_name: str
    jurisdiction: TermOut
    category: TermOut
    merchant_class: TermOut
    status: MerchantStatus
    status_label: str
    registered_address: str
    bank_account_masked: str
    contact_name: str
    contact_phone_masked: str
    invited_at: datetime
    status_changed_at: datetime
    listed_at: datetime | None


class TransitionOut(BaseModel):
    action: Action
    from_status: MerchantStatus | None
    to_status: MerchantStatus
    actor_id: str
    actor_name: str
    actor_role: str
    actor_jurisdiction: str | None
    reason: str
    at: datetime


class CommitmentOut(BaseModel):
    version: str
    sha256: str
    signatory: str
    accepted_by: str
    accepted_by_role: str
    accepted_at: datetime


class MerchantDetailOut(MerchantOut):
    business_hours: str
    terminals: list[str]
    bank_name: str
    commitment: CommitmentOut | None
    on_dishonest_list: bool
    actions: list[Action] = Field(description="what the caller may do to this merchant now")
    history: list[TransitionOut]


class MerchantPage(BaseModel):
    items: list[MerchantOut]
    total: int
    page: int
    page_size: int


class PublicMerchantOut(BaseModel):
    """An active merchant as residents see it."""

    id: str
    campaign_id: str
    name: str
    category: TermOut
    address: str
    district: TermOut = Field(description="雁江区, 安岳县 or 乐至县 (高新区 and 临空经济区 lie in 雁江区)")
    jurisdiction: TermOut
    business_hours: str


class PublicMerchantPage(BaseModel):
    items: list[PublicMerchantOut]
    total: int
    page: int
    page_size: int


class RowProblemOut(BaseModel):
    row: int
    reason: str


class ImportReportOut(BaseModel):
    total_rows: int
    invited: int
    already_invited: int
    rejected: list[RowProblemOut]


class PublishOut(BaseModel):
    published: int
    merchant_ids: list[str]


class DishonestEntryOut(BaseModel):
    credit_code: str
    legal_name: str
    reason: str
    campaign_id: str | None
    merchant_id: str | None
    listed_at: datetime
    listed_by: str
    listed_by_role: str
    delisted_at: datetime | None
    delisted_by: str | None
    delisted_by_role: str | None
    delist_reason: str | None


class CommitmentTextOut(BaseModel):
    version: str
    sha256: str = Field(description="what an acceptance must quote")
    text: str


def merchant_out(row: MerchantRow) -> MerchantOut:
    status = MerchantStatus(row.status)
    return MerchantOut(
        id=row.id,
        campaign_id=row.campaign_id,
        credit_code=row.credit_code,
        legal_name=row.legal_name,
        jurisdiction=_term(Jurisdiction(row.jurisdiction)),
        category=_term(Category(row.category)),
        merchant_class=_term(MerchantClass(row.merchant_class)),
        status=status,
        status_label=status.label,
        registered_address=row.registered_address,
        bank_account_masked=row.bank_account_masked,
        contact_name=row.contact_name,
        contact_phone_masked=row.contact_phone_masked,
        invited_at=row.invited_at,
        status_changed_at=row.status_changed_at,
        listed_at=row.listed_at,
    )


def _transition_out(row: MerchantTransitionRow) -> TransitionOut:
    return TransitionOut(
        action=Action(row.action),
        from_status=None if row.from_status is None else MerchantStatus(row.from_status),
        to_status=MerchantStatus(row.to_status),
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        actor_jurisdiction=row.actor_jurisdiction,
        reason=row.reason,
        at=row.at,
    )


def merchant_detail_out(detail: MerchantDetail) -> MerchantDetailOut:
    row = detail.merchant
    commitment = None
    if row.commitment_sha256 is not None and row.committed_at is not None:
        commitment = CommitmentOut(
            version=row.commitment_version or "",
            sha256=row.commitment_sha256,
            signatory=row.commitment_signatory or "",
            accepted_by=row.committed_by or "",
            accepted_by_role=row.committed_by_role or "",
            accepted_at=row.committed_at,
        )
    return MerchantDetailOut(
        **merchant_out(row).model_dump(),
        business_hours=row.business_hours,
        terminals=[terminal.terminal_id for terminal in row.terminals],
        bank_name=row.bank_name,
        commitment=commitment,
        on_dishonest_list=detail.dishonest,
        actions=list(detail.actions),
        history=[_transition_out(item) for item in detail.history],
    )


def merchant_page(page: Page[MerchantRow]) -> MerchantPage:
    return MerchantPage(
        items=[merchant_out(row) for row in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )


def public_merchant_page(page: Page[MerchantRow]) -> PublicMerchantPage:
    return PublicMerchantPage(
        items=[
            PublicMerchantOut(
                id=row.id,
                campaign_id=row.campaign_id,
                name=row.legal_name,
                category=_term(Category(row.category)),
                address=row.registered_address,
                district=_term(Jurisdiction(row.jurisdiction).district),
                jurisdiction=_term(Jurisdiction(row.jurisdiction)),
                business_hours=row.business_hours,
            )
            for row in page.items
        ],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )


def import_report_out(report: ImportReport) -> ImportReportOut:
    return ImportReportOut(
        total_rows=report.total_rows,
        invited=report.invited,
        already_invited=report.already_invited,
        rejected=[_row_problem(problem) for problem in report.rejected],
    )


def _row_problem(problem: RowProblem) -> RowProblemOut:
    return RowProblemOut(row=problem.row, reason=problem.reason)


def dishonest_entry_out(row: DishonestEntryRow) -> DishonestEntryOut:
    return DishonestEntryOut(
        credit_code=row.credit_code,
        legal_name=row.legal_name,
        reason=row.reason,
        campaign_id=row.campaign_id,
        merchant_id=row.merchant_id,
        listed_at=row.listed_at,
        listed_by=row.listed_by_name,
        listed_by_role=row.listed_by_role,
        delisted_at=row.delisted_at,
        delisted_by=row.delisted_by_name,
        delisted_by_role=row.delisted_by_role,
        delist_reason=row.delist_reason,
    )


def commitment_text_out(text: CommitmentText) -> CommitmentTextOut:
    return CommitmentTextOut(version=text.version, sha256=text.sha256, text=text.text)
