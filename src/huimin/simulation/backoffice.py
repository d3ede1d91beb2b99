"""The people behind the platform in `huimin demo`: the officials' console accounts, the bank, the
settlement desk, the risk desk and the complaint handlers, each acting through the services as the
console or the CLI would, with the account's own principal (so every history names a real account).

- `Staff`: one console account per government role and per county (password and TOTP like any
  official's; the demo prints them so a newcomer can sign in to the demo's database);
- `Bank`: reads a run's clearing file and answers it like a bank's confirmation file: every payout paid,
  except about one in two hundred refused once (账户状态异常), which the next run pays;
- `SettlementDesk`: on each working day the operator prepares the run of the days due (T+1), finance
  approves it, the clearing file goes to the bank, the bank's answer is imported in the afternoon;
- `RiskDesk`: each morning the risk scan reads the new claims, redemptions and refunds; the operator's
  risk team opens a case for every subject with open alerts, investigates, and either dismisses it or
  confirms it, refers it (merchants to the market regulator, persons and devices to the police) and the
  city sanctions: a merchant is expelled (cash-out schemes) or suspended (till misuse), a person or a
  device is blocked from claiming and its unused vouchers revoked;
- `Hotline`: residents' complaints through the app, handled by the department they are routed to.

The investigation's finding is the simulation's ground truth (who was planted): the demo measures the
rules, not the investigators, so an investigator here never errs.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import create_user, principal_of, totp_sealer
from huimin.auth.principals import Principal, Role
from huimin.complaints import service as complaints
from huimin.complaints.domain import Action as ComplaintAction
from huimin.complaints.domain import Category as ComplaintCategory
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import Clock, local_date
from huimin.kit.terms import Jurisdiction
from huimin.merchants.service import MerchantSealer
from huimin.risk import flows as risk_flows
from huimin.risk import service as risk
from huimin.risk.domain import AlertStatus, CaseAction, Department, Measure, SubjectKind
from huimin.risk.models import RiskAlertRow
from huimin.risk.service import MerchantLinks
from huimin.settlement import service as settlement
from huimin.settlement.domain import latest_due_day

__all__ = ["DEMO_PASSWORD", "Bank", "Hotline", "RiskDesk", "SettlementDesk", "Staff"]

DEMO_PASSWORD = "Ziyang-demo-2022"  # noqa: S105 (the demo database's accounts only; printed by the demo)
BANK_FAILURE_ONE_IN = 200

_OFFICIALS: tuple[tuple[str, Role, str], ...] = (
    ("cityadmin", Role.CITY_ADMIN, "市商务局 王芳"),
    ("operator", Role.OPERATOR, "银联资阳分公司 李强"),
    ("finance", Role.FINANCE, "市财政局 刘洋"),
    ("regulator", Role.MARKET_REGULATOR, "市市场监管局 陈静"),
    ("police", Role.POLICE, "市公安局 赵磊"),
    ("pboc", Role.PBOC, "人行资阳市中心支行 孙丽"),
    ("hotline", Role.HOTLINE, "市12345热线 周敏"),
    ("union", Role.UNION_ADMIN, "市总工会 吴刚"),
    ("publicity", Role.PUBLICITY, "市委宣传部 郑红"),
)


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    display_name: str
    totp_secret: str | None
    principal: Principal


@dataclass
class Staff:
    accounts: dict[str, Account]

    @classmethod
    async def create(
        cls, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
    ) -> Staff:
        sealer = totp_sealer(settings.secret_key.get_secret_value())
        wanted = [(username, role, name, None) for username, role, name in _OFFICIALS] + [
            (
                f"reviewer_{jurisdiction.value}",
                Role.COUNTY_REVIEWER,
                f"{jurisdiction.label}商务局 张伟",
                jurisdiction,
            )
            for jurisdiction in Jurisdiction
        ]
        accounts = {}
        async with unit_of_work(sessions) as session:
            for username, role, name, jurisdiction in wanted:
                made = await create_user(
                    session,
                    username=username,
                    display_name=name,
                    role=role,
                    password=DEMO_PASSWORD,
                    sealer=sealer,
                    clock=clock,
                    jurisdiction=jurisdiction,
                )
                accounts[username] = Account(username, role, name, made.totp_secret, principal_of(made.user))
        return cls(accounts)

    def __getitem__(self, username: str) -> Principal:
        return self.accounts[username].principal

    def reviewer(self, jurisdiction: Jurisdiction) -> Principal:
        return self[f"reviewer_{jurisdiction.value}"]

    def sign_ins(self) -> list[dict[str, Any]]:
        return [
            {
                "username": account.username,
                "password": DEMO_PASSWORD,
                "role": account.role.value,
                "name": account.display_name,
                "totp_secret": account.totp_secret,
            }
            for account in self.accounts.values()
        ]


class Bank:
    """The settlement bank (代发银行): answers a clearing file row by row."""

    @staticmethod
    def answer(clearing_file: bytes, day: date) -> bytes:
        rows = list(csv.reader(io.StringIO(clearing_file.decode("utf-8"))))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["payout_reference", "amount_fen", "status", "bank_transaction_id", "reason"])
        for number, row in enumerate(rows[1:], start=1):
            if not row or row[0] == "TRAILER":
                continue
            reference, credit_code, amount = row[0], row[1], row[5]
            digest = hashlib.sha256(f"{credit_code}/{day.isoformat()}".encode()).digest()
            if int.from_bytes(digest[:4], "big") % BANK_FAILURE_ONE_IN == 0:
                writer.writerow([reference, amount, "failed", "", "账户状态异常"])
            else:
                writer.writerow([reference, amount, "paid", f"BK{day:%Y%m%d}{number:05d}", ""])
        return out.getvalue().encode("utf-8")


@dataclass
class SettlementDesk:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    campaign_id: str
    staff: Staff
    runs: int = 0
    payouts: Counter[str] = field(default_factory=Counter)  # bank outcomes: paid, failed
    differences: int = 0  # bank rows not applied (must stay 0)
    files: dict[str, bytes] = field(default_factory=dict)  # run id -> clearing file awaiting the bank

    async def prepare_and_approve(self) -> str | None:
        """The morning's run (T+1): prepared by the operator, approved by finance; its clearing file is
        taken for the bank. None when there was nothing to pay."""
        day = latest_due_day(local_date(self.clock.now()), 1)
        sealer = MerchantSealer.from_settings(self.settings).bank_account
        async with unit_of_work(self.sessions) as session:
            run = await settlement.prepare(
                session,
                principal=self.staff["operator"],
                campaign_id=self.campaign_id,
                day=day,
                clock=self.clock,
            )
            if run.status != "prepared":
                return None
            run = await settlement.approve(
                session, principal=self.staff["finance"], run_id=run.id, clock=self.clock, sealer=sealer
            )
            self.runs += 1
            if not run.file_payouts:
                return None
            file = await settlement.clearing_file(
                session, principal=self.staff["operator"], run_id=run.id, sealer=sealer, clock=self.clock
            )
        self.files[run.id] = file.content
        return run.id

    async def bank_answers(self, run_id: str) -> None:
        content = Bank.answer(self.files.pop(run_id), local_date(self.clock.now()))
        async with unit_of_work(self.sessions) as session:
            report = await settlement.import_bank_file(
                session,
                principal=self.staff["operator"],
                campaign_id=self.campaign_id,
                content=content,
                clock=self.clock,
            )
        self.differences += len(report.differences)
        for line in content.decode().splitlines()[1:]:
            self.payouts[line.split(",")[2]] += 1

    async def recover(self) -> int:
        """The campaign's close: the recovery requested by the operator, approved by finance."""
        async with unit_of_work(self.sessions) as session:
            row = await settlement.request_recovery(
                session, principal=self.staff["operator"], campaign_id=self.campaign_id, clock=self.clock
            )
            row = await settlement.approve_recovery(
                session, principal=self.staff["finance"], recovery_id=row.id, clock=self.clock
            )
        return int(row.total_fen)


# Sanctions by the pattern the investigation found (the case's subject kind decides what is possible).
_EXPEL = {"self_claim_self_redeem", "threshold_hugging", "split_orders", "velocity", "resale_ring"}
_CASE_TITLES = {
    SubjectKind.MERCHANT: "商户疑似套现核查",
    SubjectKind.PERSON: "个人异常领券核查",
    SubjectKind.DEVICE: "设备聚集领券核查",
}


@dataclass
class RiskDesk:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    campaign_id: str
    staff: Staff
    guilty: dict[tuple[str, str], str]  # (subject kind, subject id) -> the pattern planted on it
    person_measure: Measure = Measure.BLOCK_AND_REVOKE  # persons and devices: blocked, vouchers revoked
    cases: Counter[str] = field(default_factory=Counter)  # outcomes: dismissed, confirmed, sanctioned
    sanctioned: set[tuple[str, str]] = field(default_factory=set)
    scans: int = 0
    events: int = 0

    async def morning(self) -> None:
        """The scan of everything since the last one, then a case for each subject with open alerts."""
        links = MerchantLinks(hasher=self.settings.hasher, sealer=MerchantSealer.from_settings(self.settings))
        report = await risk_flows.scan(self.sessions, links=links, clock=self.clock)
        self.scans += 1
        self.events += report.events
        async with self.sessions() as session:
            open_alerts = (
                await session.scalars(
                    select(RiskAlertRow)
                    .where(
                        RiskAlertRow.campaign_id == self.campaign_id,
                        RiskAlertRow.status == AlertStatus.OPEN.value,
                    )
                    .order_by(RiskAlertRow.raised_at, RiskAlertRow.id)
                )
            ).all()
        by_subject: dict[tuple[str, str], list[RiskAlertRow]] = defaultdict(list)
        for alert in open_alerts:
            by_subject[(alert.subject_kind, alert.subject_id)].append(alert)
        for subject, alerts in sorted(by_subject.items()):
            await self._case(subject, alerts)

    async def _case(self, subject: tuple[str, str], alerts: list[RiskAlertRow]) -> None:
        kind = SubjectKind(subject[0])
        investigator = self.staff["operator"]  # 银联风险监测: the operator's risk team
        rules = sorted({alert.rule for alert in alerts})
        async with unit_of_work(self.sessions) as session:
            case = await risk.open_case(
                session,
                principal=investigator,
                alert_ids=[alert.id for alert in alerts],
                title=_CASE_TITLES[kind],
                reason=f"预警 {', '.join(rules)} 立案核查",
                clock=self.clock,
            )
            case_id = case.case.id
            await risk.step_case(
                session,
                principal=investigator,
                case_id=case_id,
                action=CaseAction.INVESTIGATE,
                reason="调取交易流水、设备与身份关联信息",
                clock=self.clock,
            )
            pattern = self.guilty.get(subject)
            if pattern is None:
                await risk.step_case(
                    session,
                    principal=investigator,
                    case_id=case_id,
                    action=CaseAction.DISMISS,
                    reason="核查为正常经营，排除套现嫌疑",
                    clock=self.clock,
                )
                self.cases["dismissed"] += 1
                return
            await risk.step_case(
                session,
                principal=investigator,
                case_id=case_id,
                action=CaseAction.CONFIRM,
                reason=f"核查属实：{pattern}",
                clock=self.clock,
            )
            self.cases["confirmed"] += 1
            if subject in self.sanctioned:
                return  # sanctioned already: the new alerts join the record, nothing more to do
            department = Department.MARKET_REGULATOR if kind is SubjectKind.MERCHANT else Department.POLICE
            await risk.step_case(
                session,
                principal=investigator,
                case_id=case_id,
                action=CaseAction.REFER,
                reason="移交依法查处",
                clock=self.clock,
                department=department,
            )
            measure = self._measure(kind, pattern)
            await risk.step_case(
                session,
                principal=self.staff["cityadmin"],
                case_id=case_id,
                action=CaseAction.SANCTION,
                reason="依据承诺书及活动规则处理",
                clock=self.clock,
                measure=measure,
            )
            self.sanctioned.add(subject)
            self.cases[f"sanctioned_{measure.value}"] += 1

    def _measure(self, kind: SubjectKind, pattern: str) -> Measure:
        if kind is SubjectKind.MERCHANT:
            return Measure.EXPEL if pattern in _EXPEL else Measure.SUSPEND
        return self.person_measure


# What residents complain about, and how the department answers (seed 六(五)(六)(七)(八)(九)).
COMPLAINTS: tuple[tuple[ComplaintCategory, str, str], ...] = (
    (
        ComplaintCategory.MERCHANT_REFUSED_VOUCHER,
        "收银员说消费券不能用，要求付现金",
        "已约谈商户，商户承认收银员操作不熟，已培训并向市民道歉",
    ),
    (
        ComplaintCategory.DISGUISED_PRICE_INCREASE,
        "用券前后同一商品价格不一样，涉嫌先涨价后用券",
        "经现场核查，商品标价未变动，已向市民解释促销规则",
    ),
    (
        ComplaintCategory.PRODUCT_QUALITY,
        "用券买的商品有质量问题，商家不给退换",
        "已督促商户按规定退换货，市民表示满意",
    ),
    (
        ComplaintCategory.BANK_PAYMENT,
        "核销后银行卡扣款金额与小票不符",
        "经核实为银行入账延迟，款项已正常入账",
    ),
)
CANNOT_CLAIM = (
    ComplaintCategory.CANNOT_CLAIM,
    "十点准时点领取，一直提示已抢完",
    "经核查，该场次消费券已于开放后数分钟内领完，已向市民说明下一场次时间",
)


@dataclass
class Hotline:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    campaign_id: str
    partner_id: str
    staff: Staff
    outcomes: Counter[str] = field(default_factory=Counter)

    async def register(
        self, *, resident_id: str, complaint: tuple[ComplaintCategory, str, str], merchant_id: str | None
    ) -> str | None:
        category, text, _ = complaint
        try:
            async with unit_of_work(self.sessions) as session:
                row = await complaints.register_for_resident(
                    session,
                    partner_id=self.partner_id,
                    resident_id=resident_id,
                    category=category,
                    text=text,
                    campaign_id=self.campaign_id,
                    merchant_id=merchant_id,
                    policy=complaints.ComplaintPolicy.from_settings(self.settings),
                    clock=self.clock,
                )
        except HuiminError as refusal:
            self.outcomes[f"refused_{refusal.code}"] += 1
            return None
        self.outcomes["registered"] += 1
        return row.id

    async def handle(self, complaint_id: str, answer: str) -> None:
        """The department's handler takes it, looks into it and answers; the complaint is closed."""
        async with unit_of_work(self.sessions) as session:
            found = await complaints.get_complaint(
                session, principal=self.staff["cityadmin"], complaint_id=complaint_id, clock=self.clock
            )
            handler = self._handler(found.complaint.department, found.complaint.jurisdiction)
            for action, text, assignee in (
                (ComplaintAction.ASSIGN, "", handler.actor_id),
                (ComplaintAction.START, "", None),
                (ComplaintAction.RESOLVE, answer, None),
                (ComplaintAction.CLOSE, "市民对处理结果满意", None),
            ):
                await complaints.step(
                    session,
                    principal=handler,
                    complaint_id=complaint_id,
                    action=action,
                    text=text,
                    assignee_id=assignee,
                    clock=self.clock,
                )
        self.outcomes["closed"] += 1

    def _handler(self, department: str, jurisdiction: str | None) -> Principal:
        if department == "county_commerce" and jurisdiction is not None:
            return self.staff.reviewer(Jurisdiction(jurisdiction))
        return self.staff[
            {
                "city_commerce": "cityadmin",
                "market_regulator": "regulator",
                "operator": "operator",
                "operator_risk": "operator",
                "pboc": "pboc",
            }[department]
        ]
