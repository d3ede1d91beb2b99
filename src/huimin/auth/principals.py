"""Who acts: the roles of SPEC §1, their permissions, and jurisdiction scope.

Authorisation lives in the service layer: a use case takes the acting `Principal` and asks it. A
county reviewer is scoped to one jurisdiction; an object outside the caller's scope is reported as
not found (404), never as forbidden, so ids of other jurisdictions leak nothing (SPEC §11.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from huimin.errors import HuiminError, NotFound
from huimin.kit.terms import Jurisdiction

__all__ = ["GOVERNMENT_ROLES", "Permission", "Principal", "Role", "forbidden"]


class Role(StrEnum):
    CITY_ADMIN = "city_admin"  # 市商务局
    COUNTY_REVIEWER = "county_reviewer"  # 县（区）商务主管部门, 高新区, 临空经济区
    OPERATOR = "operator"  # 银联 payment operator
    UNION_ADMIN = "union_admin"  # 市总工会
    FINANCE = "finance"  # 市财政局
    MARKET_REGULATOR = "market_regulator"  # 市市场监管局
    POLICE = "police"  # 市公安局
    PBOC = "pboc"  # 人行资阳市中心支行
    HOTLINE = "hotline"  # 市大数据局 12345
    PUBLICITY = "publicity"  # 市委宣传部
    MERCHANT = "merchant"  # a participating merchant
    SYSTEM = "system"  # jobs and the operator's shell (the CLI)


GOVERNMENT_ROLES = frozenset(Role) - {Role.MERCHANT, Role.SYSTEM}


class Permission(StrEnum):
    MERCHANT_INVITE = "merchant.invite"
    MERCHANT_APPLY = "merchant.apply"  # complete an application with the merchant (operator)
    MERCHANT_REVIEW = "merchant.review"  # county review, own jurisdiction only
    MERCHANT_PUBLISH = "merchant.publish"  # the city's final list
    MERCHANT_COMMIT = "merchant.commit"  # accept the integrity commitment (承诺书)
    MERCHANT_SANCTION = "merchant.sanction"  # suspend, reinstate, expel
    MERCHANT_READ = "merchant.read"
    MERCHANT_EXPORT = "merchant.export"
    REPORT_READ = "report.read"  # the overview dashboard: aggregate figures, no personal data
    CAMPAIGN_READ = "campaign.read"  # campaigns, batches, rounds and their live stock in the console
    USER_MANAGE = "user.manage"  # console accounts: list, create
    REDEMPTION_READ = "redemption.read"  # search redemptions (a county its own, a merchant its own)
    INVOICE_VERIFY = "invoice.verify"  # big-ticket invoices, own jurisdiction only (seed 六(八))
    TILL_REDEEM = "till.redeem"  # a merchant user redeems at its own registered terminals (console till)
    SALES_LEDGER_EXPORT = "sales_ledger.export"  # county car and appliance sales ledgers
    LEDGER_DEPOSIT = "ledger.deposit"  # record a funder's deposit (maker)
    LEDGER_APPROVE = "ledger.approve"  # approve a deposit (checker: never the one who recorded it)
    LEDGER_READ = "ledger.read"  # balances and invariant checks
    SETTLEMENT_PREPARE = "settlement.prepare"  # prepare runs, import bank files, clawbacks, request recovery
    SETTLEMENT_APPROVE = "settlement.approve"  # approve runs and recoveries (never one's own)
    SETTLEMENT_READ = "settlement.read"  # runs, reconciliation, statements
    SETTLEMENT_EXPORT = "settlement.export"  # the clearing file for the bank (carries clear accounts)
    RISK_READ = "risk.read"  # fraud alerts, cases, the watch list (a county: its own merchants only)
    RISK_INVESTIGATE = "risk.investigate"  # open cases from alerts, investigate, dismiss, confirm
    RISK_REFER = "risk.refer"  # refer a confirmed case to the market regulator or the police
    RISK_REFERRAL_READ = "risk.referral_read"  # a receiving department: the cases referred to it
    COMPLAINT_REGISTER = (
        "complaint.register"  # 12345 hotline, market regulator, PBOC: register, close after callback
    )
    COMPLAINT_READ = "complaint.read"  # complaints of the caller's department, channel or jurisdiction
    COMPLAINT_HANDLE = (
        "complaint.handle"  # assign, work on, resolve the complaints routed to one's department
    )
    INSPECTION_RECORD = "inspection.record"  # the market regulator's findings against merchants
    INSPECTION_READ = "inspection.read"  # findings (a county: its own merchants'), the city's inbox
    ANNOUNCEMENT_PUBLISH = "announcement.publish"  # announcements and activity rules (publicity)
    PRIVACY_PURGE = "privacy.purge"  # erase a campaign's personal data after its final settlement
    ALLOCATION_PLAN = "allocation.plan"  # ask the next-round planner, accept, edit or reject its proposal


# Every government role reads the overview: its figures are aggregates (SPEC §7), scoped where they
# concern records of a jurisdiction (merchants).
_OVERVIEW = frozenset({Permission.REPORT_READ})
# A department that answers complaints routed to it reads and handles them (scope in complaints.service).
_COMPLAINTS = frozenset({Permission.COMPLAINT_READ, Permission.COMPLAINT_HANDLE})

_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.CITY_ADMIN: frozenset(
        {
            Permission.REPORT_READ,
            Permission.CAMPAIGN_READ,
            Permission.USER_MANAGE,
            Permission.MERCHANT_INVITE,
            Permission.MERCHANT_PUBLISH,
            Permission.MERCHANT_SANCTION,
            Permission.MERCHANT_READ,
            Permission.MERCHANT_EXPORT,
            Permission.REDEMPTION_READ,
            Permission.SALES_LEDGER_EXPORT,
            Permission.LEDGER_DEPOSIT,
            Permission.LEDGER_READ,
            Permission.SETTLEMENT_READ,
            Permission.RISK_READ,
            Permission.RISK_INVESTIGATE,
            Permission.RISK_REFER,
            Permission.COMPLAINT_READ,
            Permission.COMPLAINT_HANDLE,
            Permission.INSPECTION_READ,
            Permission.ALLOCATION_PLAN,
        }
    ),
    Role.COUNTY_REVIEWER: frozenset(
        {
            Permission.REPORT_READ,
            Permission.CAMPAIGN_READ,
            Permission.MERCHANT_REVIEW,
            Permission.MERCHANT_READ,
            Permission.MERCHANT_EXPORT,
            Permission.REDEMPTION_READ,
            Permission.INVOICE_VERIFY,
            Permission.SALES_LEDGER_EXPORT,
            Permission.RISK_READ,
            Permission.COMPLAINT_READ,
            Permission.COMPLAINT_HANDLE,
            Permission.INSPECTION_READ,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            Permission.REPORT_READ,
            Permission.CAMPAIGN_READ,
            Permission.MERCHANT_APPLY,
            Permission.MERCHANT_COMMIT,
            Permission.MERCHANT_READ,
            Permission.MERCHANT_EXPORT,
            Permission.REDEMPTION_READ,
            Permission.SALES_LEDGER_EXPORT,
            Permission.LEDGER_DEPOSIT,
            Permission.LEDGER_READ,
            Permission.SETTLEMENT_PREPARE,
            Permission.SETTLEMENT_READ,
            Permission.SETTLEMENT_EXPORT,
            Permission.RISK_READ,
            Permission.RISK_INVESTIGATE,
            Permission.RISK_REFER,
            Permission.COMPLAINT_READ,
            Permission.COMPLAINT_HANDLE,
        }
    ),
    Role.UNION_ADMIN: _OVERVIEW | {Permission.CAMPAIGN_READ},
    Role.FINANCE: _OVERVIEW
    | {
        Permission.CAMPAIGN_READ,
        Permission.REDEMPTION_READ,
        Permission.LEDGER_APPROVE,
        Permission.LEDGER_READ,
        Permission.SETTLEMENT_APPROVE,
        Permission.SETTLEMENT_READ,
        Permission.SETTLEMENT_EXPORT,
    },
    Role.MARKET_REGULATOR: _OVERVIEW
    | {Permission.MERCHANT_READ, Permission.REDEMPTION_READ, Permission.RISK_REFERRAL_READ}
    | _COMPLAINTS
    | {Permission.COMPLAINT_REGISTER, Permission.INSPECTION_RECORD, Permission.INSPECTION_READ},
    Role.POLICE: _OVERVIEW | {Permission.RISK_REFERRAL_READ},
    Role.PBOC: _OVERVIEW | _COMPLAINTS | {Permission.COMPLAINT_REGISTER},
    Role.HOTLINE: _OVERVIEW | {Permission.COMPLAINT_REGISTER, Permission.COMPLAINT_READ},
    Role.PUBLICITY: _OVERVIEW | {Permission.COMPLAINT_READ, Permission.ANNOUNCEMENT_PUBLISH},
    Role.MERCHANT: frozenset(
        {
            Permission.MERCHANT_COMMIT,
            Permission.MERCHANT_READ,
            Permission.REDEMPTION_READ,
            Permission.TILL_REDEEM,
        }
    ),
    Role.SYSTEM: frozenset(Permission),
}


def forbidden(message: str = "your role may not do this") -> HuiminError:
    return HuiminError(message, code="forbidden", status=403)


@dataclass(frozen=True)
class Principal:
    """The acting person or job. `jurisdiction` scopes a county reviewer; `merchant_id` a merchant."""

    actor_id: str
    role: Role
    jurisdiction: Jurisdiction | None = None
    merchant_id: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.role is Role.COUNTY_REVIEWER and self.jurisdiction is None:
            raise ValueError("a county reviewer needs a jurisdiction")
        if self.role is Role.MERCHANT and self.merchant_id is None:
            raise ValueError("a merchant principal needs its merchant id")

    def can(self, permission: Permission) -> bool:
        return permission in _GRANTS.get(self.role, frozenset())

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise forbidden(f"the {self.role} role may not {permission}")

    def sees_jurisdiction(self, jurisdiction: Jurisdiction) -> bool:
        return self.jurisdiction is None or self.jurisdiction == jurisdiction

    def require_scope(self, jurisdiction: Jurisdiction, *, what: str, object_id: str) -> None:
        """Another jurisdiction's object does not exist for this principal: 404, not 403."""
        if not self.sees_jurisdiction(jurisdiction):
            raise NotFound(f"no {what} {object_id!r}", code=f"unknown_{what}")

    @classmethod
    def system(cls, name: str = "cli") -> Principal:
        return cls(actor_id=f"system:{name}", role=Role.SYSTEM, name=name)
