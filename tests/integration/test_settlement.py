"""Settlement worked example, in the style of django-hordak's: a day of claims and redemptions, a
partial refund, a suspension, a run, a failed payout, an expulsion with clawback, and the campaign's
close with recovery; the balances asserted to the fen after each step, with every ledger invariant
(I1-I3, settlement's included) holding throughout. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.principals import Principal, Role
from huimin.claims.flows import expire_and_recycle
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.money import Fen
from huimin.merchants.domain import Action
from huimin.redemptions.models import RedemptionRow
from huimin.settlement import domain, service
from huimin.settlement.models import SettlementApprovalRow, SettlementRunRow
from huimin.settlement.reconcile import reconcile
from tests.integration.merchant_helpers import OPERATOR, SEALER, take
from tests.integration.staff import accept_test_principals, as_
from tests.integration.till import FINANCE, Till, checked_balances, fund, open_till

FINANCE_2 = Principal(actor_id="usr_finance_2", role=Role.FINANCE, name="市财政局 周敏")
BANK = SEALER.bank_account
SECRET = "test-secret-key-for-merchant-tests-0123456789"
JUNE_24 = date(2022, 6, 24)
JUNE_25 = date(2022, 6, 25)


class Crash(Exception):
    """A process killed between two steps."""


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The merchants' bank accounts are sealed with the test key of merchant_helpers."""
    return Settings(database_url=database_url, secret_key=SecretStr(SECRET))


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    opened = await open_till(client, sessions, settings, clock)
    await fund(sessions, opened, clock)
    return opened


async def prepare(
    sessions: async_sessionmaker[AsyncSession], till: Till, day: date, **kw: object
) -> SettlementRunRow:
    async with unit_of_work(sessions) as session:
        return await service.prepare(
            session,
            principal=OPERATOR,
            campaign_id=till.campaign_id,
            day=day,
            clock=till.clock,
            **kw,  # type: ignore[arg-type]
        )


async def approve(
    sessions: async_sessionmaker[AsyncSession],
    till: Till,
    run_id: str,
    who: Principal = FINANCE,
    **kw: object,
) -> SettlementRunRow:
    async with unit_of_work(sessions) as session:
        return await service.approve(
            session,
            principal=who,
            run_id=run_id,
            clock=till.clock,
            sealer=BANK,
            **kw,  # type: ignore[arg-type]
        )


async def bank_file(
    sessions: async_sessionmaker[AsyncSession], till: Till, content: bytes
) -> service.BankImportReport:
    async with unit_of_work(sessions) as session:
        return await service.import_bank_file(
            session, principal=OPERATOR, campaign_id=till.campaign_id, content=content, clock=till.clock
        )


async def detail(sessions: async_sessionmaker[AsyncSession], run_id: str) -> service.RunDetail:
    async with unit_of_work(sessions) as session:
        return await service.get_run(session, principal=OPERATOR, run_id=run_id)


def answer(*rows: tuple[str, int, str, str]) -> bytes:
    lines = ["payout_reference,amount_fen,status,bank_transaction_id,reason"]
    lines += [
        f"{reference},{amount},{status},{txn},{'账户已销户' if status == 'failed' else ''}"
        for reference, amount, status, txn in rows
    ]
    return ("\n".join(lines) + "\n").encode()


async def merchant_act(
    sessions: async_sessionmaker[AsyncSession], till: Till, action: Action, name: str
) -> None:
    async with unit_of_work(sessions) as session:
        await take(session, action, till.merchants[name], clock=till.clock)


async def spend(
    till: Till, merchant: str, category: str, order: int = 20_000, voucher: dict[str, object] | None = None
) -> dict[str, object]:
    """Redeem a voucher (a fresh one unless given: claims are possible only while the round is open)."""
    voucher = voucher or await till.voucher()
    response = await till.redeem(till.body(voucher, merchant, category=category, order_amount_fen=order))
    assert response.status_code == 201, response.text
    return dict(response.json())


FISCAL, SOCIAL = 80_000_000, 20_000_000
DEPOSITED = {"funder:fiscal": FISCAL, "funder:social": SOCIAL}


async def test_a_campaign_settled_clawed_back_and_recovered_to_the_fen(
    till: Till, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    # Friday 2022-06-24: five residents claim a 满100减30 voucher each (¥30: ¥21 fiscal, ¥9 social) and
    # spend four: two at the restaurant, one at the shop, one at a second restaurant.
    first = await spend(till, "catering", "catering", 12_000)
    second = await spend(till, "catering", "catering", 20_000)
    await spend(till, "retail", "retail")
    await spend(till, "catering_2", "catering")
    spare, later = await till.voucher(), await till.voucher()
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "budget:fiscal": FISCAL - 6 * 2_100,
        "budget:social": SOCIAL - 6 * 900,
        "vouchers:fiscal": 2 * 2_100,
        "vouchers:social": 2 * 900,
        "payable:catering": 6_000,
        "payable:retail": 3_000,
        "payable:catering_2": 3_000,
    }

    # A partial refund of ¥50 of the ¥200 dinner returns ⌊30 × 50 / 200⌋ = ¥7.50 (¥5.25 / ¥2.25).
    refund = await till.refund(str(second["redemption_id"]), 5_000)
    assert refund.json()["subsidy_returned_fen"] == 750
    # The second restaurant is suspended: its ¥30 stays frozen.
    await merchant_act(sessions, till, Action.SUSPEND, "catering_2")
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "budget:fiscal": FISCAL - 6 * 2_100 + 525,
        "budget:social": SOCIAL - 6 * 900 + 225,
        "vouchers:fiscal": 2 * 2_100,
        "vouchers:social": 2 * 900,
        "payable:catering": 5_250,
        "payable:retail": 3_000,
        "payable:catering_2": 3_000,
    }

    # The day cannot be settled on the day itself (T+1).
    with pytest.raises(Exception, match="not due"):
        await prepare(sessions, till, JUNE_24)
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))  # Saturday 09:00
    run = await prepare(sessions, till, JUNE_24)
    assert (run.lines, run.redemptions, run.subsidy_fen, run.netted_fen, run.total_fen) == (
        2,
        3,
        8_250,
        0,
        8_250,
    )
    assert run.held["frozen"] == [
        {"merchant_id": till.merchants["catering_2"], "status": "suspended", "redemptions": 1, "fen": 3_000}
    ]
    assert (await prepare(sessions, till, JUNE_24)).id == run.id  # idempotent on (campaign, day)
    # Money in a run awaiting approval cannot be refunded.
    blocked = await till.refund(str(first["redemption_id"]), 1_000)
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "settlement_in_progress"
    # Maker-checker: the preparer never approves (the service, and the database by itself).
    with pytest.raises(Exception, match=r"settlement\.approve"):
        await approve(sessions, till, run.id, who=OPERATOR)
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            session.add(
                SettlementApprovalRow(
                    run_id=run.id,
                    approver=run.prepared_by,
                    approver_name="x",
                    approver_role="finance",
                    prepared_by=run.prepared_by,
                    at=till.clock.now(),
                )
            )

    approved = await approve(sessions, till, run.id)
    assert approved.status == "approved"
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "budget:fiscal": FISCAL - 6 * 2_100 + 525,
        "budget:social": SOCIAL - 6 * 900 + 225,
        "vouchers:fiscal": 2 * 2_100,
        "vouchers:social": 2 * 900,
        "clearing": 8_250,
        "payable:catering_2": 3_000,
    }
    # The clearing file: the same bytes every time, a trailer with control totals and a SHA-256.
    async with unit_of_work(sessions) as session:
        file = await service.clearing_file(
            session, principal=FINANCE, run_id=run.id, sealer=BANK, clock=till.clock
        )
    async with unit_of_work(sessions) as session:
        again = await service.clearing_file(
            session, principal=FINANCE, run_id=run.id, sealer=BANK, clock=till.clock
        )
    assert file.content == again.content
    assert domain.clearing_file_totals(file.content) == (2, Fen(8_250))
    text = file.content.decode()
    assert "6222021234567890123" in text  # the clear account, for the bank only
    lines = (await detail(sessions, run.id)).lines
    assert all(line.account_masked != "6222021234567890123" for line in lines)
    written = service.write_clearing_file(tmp_path / "clearing", file)
    assert written.read_bytes() == file.content
    assert (written.stat().st_mode & 0o777) == 0o600
    references = {line.merchant_id: domain.payout_reference(run.id, line.seq) for line in lines}
    catering, retail = references[till.merchants["catering"]], references[till.merchants["retail"]]

    # The bank pays the restaurant; the shop's account was closed: its payout fails.
    report = await bank_file(
        sessions, till, answer((catering, 5_250, "paid", "BK0001"), (retail, 3_000, "failed", ""))
    )
    assert (report.applied, report.differences) == (2, [])
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "budget:fiscal": FISCAL - 6 * 2_100 + 525,
        "budget:social": SOCIAL - 6 * 900 + 225,
        "vouchers:fiscal": 2 * 2_100,
        "vouchers:social": 2 * 900,
        "settled:catering": 5_250,
        "payable:retail": 3_000,
        "payable:catering_2": 3_000,
    }
    # Importing the same file again applies nothing; unknown, duplicate and wrong amounts are reported.
    again_report = await bank_file(
        sessions, till, answer((catering, 5_250, "paid", "BK0001"), (retail, 3_000, "failed", ""))
    )
    assert (again_report.applied, again_report.already_applied, again_report.differences) == (0, 2, [])
    async with unit_of_work(sessions) as session:
        clean = await reconcile(session, principal=FINANCE, day=JUNE_24, sealer=BANK)
        statuses = dict(
            (
                await session.execute(
                    select(RedemptionRow.status, func.count())
                    .where(RedemptionRow.campaign_id == till.campaign_id)
                    .group_by(RedemptionRow.status)
                )
            ).all()
        )
        settled_vouchers = await session.scalar(select(func.count()).where(VoucherRow.status == "settled"))
    assert clean.clean, clean.differences
    assert statuses == {"settled": 2, "confirmed": 2}
    assert settled_vouchers == 2
    odd = await bank_file(
        sessions,
        till,
        answer(
            (catering, 5_251, "paid", "BK0009"),
            ("0" * 31, 100, "paid", "BK0010"),
            (retail, 3_000, "paid", "BK0011"),
        ),
    )
    assert [outcome for _, _, outcome in odd.differences] == [
        "amount_mismatch",
        "unknown_reference",
        "conflict",
    ]
    async with unit_of_work(sessions) as session:
        listed = await reconcile(session, principal=FINANCE, day=JUNE_24, sealer=BANK)
    assert [item.what for item in listed.differences] == ["bank_file", "bank_file", "bank_file"]

    # Saturday: the restaurant sells once more (¥30 payable), then is expelled for cash-out. Its
    # settled ¥52.50 is clawed back: ¥30 set off against what it is still owed, ¥22.50 outstanding.
    await spend(till, "catering", "catering", voucher=later)
    await merchant_act(sessions, till, Action.EXPEL, "catering")
    async with unit_of_work(sessions) as session:
        [clawback] = await service.consume_merchant_events(session, clock=till.clock)
    assert (
        clawback.redemptions,
        clawback.clawed_back_fen,
        clawback.setoff_fen,
        clawback.outstanding_fen,
    ) == (
        2,
        5_250,
        3_000,
        2_250,
    )
    async with unit_of_work(sessions) as session:
        assert await service.consume_merchant_events(session, clock=till.clock) == []  # once only
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "budget:fiscal": FISCAL - 6 * 2_100 + 525 + 2_100,
        "budget:social": SOCIAL - 6 * 900 + 225 + 900,
        "vouchers:fiscal": 2_100,
        "vouchers:social": 900,
        "settled:catering": 3_000,
        "receivable:catering": 2_250,
        "payable:retail": 3_000,
        "payable:catering_2": 3_000,
    }

    # Sunday: the run for Saturday retries the shop's failed payout; the bank pays it.
    till.clock.set(datetime(2022, 6, 26, 1, 0, tzinfo=UTC))
    second_run = await prepare(sessions, till, JUNE_25)
    [line] = (await detail(sessions, second_run.id)).lines
    assert (line.merchant_id, line.subsidy_fen, line.retry_fen, line.amount_fen) == (
        till.merchants["retail"],
        3_000,
        3_000,
        3_000,
    )
    await approve(sessions, till, second_run.id)
    await bank_file(
        sessions, till, answer((domain.payout_reference(second_run.id, line.seq), 3_000, "paid", "BK0002"))
    )
    async with unit_of_work(sessions) as session:
        assert (await reconcile(session, principal=FINANCE, day=JUNE_25, sealer=BANK)).clean

    # The campaign ends; the spare voucher expires unspent. Recovery: maker-checker, then posted.
    till.clock.set(datetime(2023, 1, 2, 1, 0, tzinfo=UTC))
    async with unit_of_work(sessions) as session:
        await expire_and_recycle(session, clock=till.clock)
    async with unit_of_work(sessions) as session:
        assert (await session.get(VoucherRow, str(spare["voucher_id"]))).status == "expired"  # type: ignore[union-attr]
    async with unit_of_work(sessions) as session:
        requested = await service.request_recovery(
            session, principal=OPERATOR, campaign_id=till.campaign_id, clock=till.clock
        )
    with pytest.raises(Exception, match="cannot approve"):
        async with unit_of_work(sessions) as session:
            await service.approve_recovery(
                session,
                principal=Principal(actor_id=OPERATOR.actor_id, role=Role.FINANCE),
                recovery_id=requested.id,
                clock=till.clock,
            )
    async with unit_of_work(sessions) as session:
        await service.approve_recovery(session, principal=FINANCE, recovery_id=requested.id, clock=till.clock)
    fiscal_back = FISCAL - 6 * 2_100 + 525 + 2_100 + 2_100
    social_back = SOCIAL - 6 * 900 + 225 + 900 + 900
    assert await checked_balances(sessions, till) == {
        **DEPOSITED,
        "recovery:fiscal": fiscal_back,
        "recovery:social": social_back,
        "settled:catering": 3_000,
        "settled:retail": 3_000,
        "receivable:catering": 2_250,
        "payable:catering_2": 3_000,
    }
    async with unit_of_work(sessions) as session:
        final = await service.statement(session, principal=FINANCE, campaign_id=till.campaign_id)
    by_funder = {item.funder: item for item in final.funders}
    assert by_funder["fiscal"].to_merchants == FISCAL - fiscal_back
    assert by_funder["social"].to_merchants == SOCIAL - social_back
    assert (final.subsidy_paid, final.clawed_back, final.outstanding, final.frozen) == (
        6_000,
        5_250,
        2_250,
        3_000,
    )
    assert sum(item.subsidy_paid for item in final.funders) == 6_000
    for item in final.funders:
        assert item.subsidy_paid + item.outstanding + item.frozen + item.in_transit == item.to_merchants


async def test_a_crash_between_steps_ends_like_a_clean_run(
    till: Till, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await spend(till, "catering", "catering")
    await spend(till, "retail", "retail")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    before = await checked_balances(sessions, till)

    def crash_at(step: str) -> service.Checkpoint:
        def checkpoint(name: str) -> None:
            if name == step:
                raise Crash(name)

        return checkpoint

    for step in ("attached", "prepared"):
        with pytest.raises(Crash):
            await prepare(sessions, till, JUNE_24, checkpoint=crash_at(step))
        assert await checked_balances(sessions, till) == before
        async with unit_of_work(sessions) as session:
            assert await session.scalar(select(func.count()).select_from(SettlementRunRow)) == 0
            assert (
                await session.scalar(select(func.count()).where(RedemptionRow.settlement_id.is_not(None)))
                == 0
            )
    run = await prepare(sessions, till, JUNE_24)
    for step in ("posted", "approved"):
        with pytest.raises(Crash):
            await approve(sessions, till, run.id, checkpoint=crash_at(step))
        assert await checked_balances(sessions, till) == before
    approved = await approve(sessions, till, run.id)
    assert (approved.status, approved.total_fen) == ("approved", 6_000)
    assert (await checked_balances(sessions, till))["clearing"] == 6_000
    async with unit_of_work(sessions) as session:
        file = await service.clearing_file(
            session, principal=FINANCE, run_id=run.id, sealer=BANK, clock=till.clock
        )
    out = tmp_path / "clearing"
    with pytest.raises(Crash):
        service.write_clearing_file(out, file, checkpoint=crash_at("written"))
    assert list(out.iterdir()) == []  # neither a half file nor a temporary one
    assert service.write_clearing_file(out, file).read_bytes() == file.content
    assert service.write_clearing_file(out, file).read_bytes() == file.content
    # Approving again is refused; no second postings.
    with pytest.raises(Exception, match="not awaiting approval"):
        await approve(sessions, till, run.id, who=FINANCE_2)
    assert (await checked_balances(sessions, till))["clearing"] == 6_000


async def test_two_approvers_above_the_threshold_and_a_full_set_off(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with unit_of_work(sessions) as session:
        await service.configure(
            session, principal=FINANCE, campaign_id=till.campaign_id, dual_approval_above=Fen(5_000)
        )
    sale = await spend(till, "catering", "catering")
    kept = [await till.voucher(), await till.voucher()]
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    run = await prepare(sessions, till, JUNE_24)
    assert run.approvals_needed == 1  # ¥30 is below ¥50
    await approve(sessions, till, run.id)
    [line] = (await detail(sessions, run.id)).lines
    await bank_file(sessions, till, answer((domain.payout_reference(run.id, line.seq), 3_000, "paid", "BK1")))
    # A refund after payment: the ¥30 is owed back, and set off in full against the next day's ¥60.
    refund = await till.refund(str(sale["redemption_id"]), 20_000)
    assert refund.status_code == 201
    till.clock.set(datetime(2022, 6, 25, 3, 0, tzinfo=UTC))
    for voucher in kept:
        await spend(till, "catering", "catering", voucher=voucher)
    assert (await checked_balances(sessions, till))["receivable:catering"] == 3_000
    till.clock.set(datetime(2022, 6, 26, 1, 0, tzinfo=UTC))
    run2 = await prepare(sessions, till, JUNE_25)
    assert (run2.subsidy_fen, run2.netted_fen, run2.total_fen, run2.approvals_needed) == (
        6_000,
        3_000,
        3_000,
        1,
    )
    async with unit_of_work(sessions) as session:
        await service.configure(
            session, principal=FINANCE, campaign_id=till.campaign_id, dual_approval_above=Fen(100)
        )
    till.clock.set(datetime(2022, 6, 27, 1, 0, tzinfo=UTC))
    await approve(sessions, till, run2.id)
    run3 = await prepare(sessions, till, date(2022, 6, 26))
    assert run3.lines == 0
    approved = await approve(sessions, till, run3.id)
    assert approved.status == "closed"
    bal = await checked_balances(sessions, till)
    assert "receivable:catering" not in bal
    assert bal["settled:catering"] == 3_000 + 3_000 - 3_000 + 0  # paid 30, owed back 30, set off 30
    assert bal["clearing"] == 3_000


async def test_dual_approval(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    async with unit_of_work(sessions) as session:
        await service.configure(
            session, principal=FINANCE, campaign_id=till.campaign_id, dual_approval_above=Fen(100)
        )
    await spend(till, "catering", "catering")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    run = await prepare(sessions, till, JUNE_24)
    assert run.approvals_needed == 2
    first = await approve(sessions, till, run.id)
    assert first.status == "prepared"
    with pytest.raises(Exception, match="approved this already"):
        await approve(sessions, till, run.id)
    assert "clearing" not in await checked_balances(sessions, till)
    second = await approve(sessions, till, run.id, who=FINANCE_2)
    assert second.status == "approved"
    assert (await checked_balances(sessions, till))["clearing"] == 3_000


async def test_the_staff_api(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    await spend(till, "catering", "catering")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    http = till.http
    prepared = await http.post(
        "/api/v1/staff/settlement/runs",
        json={"campaign_id": till.campaign_id, "business_day": "2022-06-24"},
        headers=as_(OPERATOR),
    )
    assert prepared.status_code == 201, prepared.text
    run_id = prepared.json()["run_id"]
    refused = await http.post(f"/api/v1/staff/settlement/runs/{run_id}/approval", headers=as_(OPERATOR))
    assert refused.status_code == 403
    approved = await http.post(f"/api/v1/staff/settlement/runs/{run_id}/approval", headers=as_(FINANCE))
    assert approved.json()["status"] == "approved"
    shown = await http.get(f"/api/v1/staff/settlement/runs/{run_id}", headers=as_(FINANCE))
    [payout] = shown.json()["payouts"]
    assert payout["account_masked"] != "6222021234567890123"
    assert payout["amount_fen"] == 3_000
    csv_file = await http.get(
        f"/api/v1/staff/settlement/runs/{run_id}/clearing-file.csv", headers=as_(FINANCE)
    )
    assert csv_file.status_code == 200
    assert csv_file.content.startswith(b"payout_reference,")
    imported = await http.post(
        f"/api/v1/staff/settlement/bank-confirmations?campaign_id={till.campaign_id}",
        content=answer((payout["payout_reference"], 3_000, "paid", "BK42")),
        headers=as_(OPERATOR),
    )
    assert imported.json()["applied"] == 1
    report = await http.get("/api/v1/staff/settlement/reconciliation?day=2022-06-24", headers=as_(FINANCE))
    assert report.json()["clean"] is True
    statement = await http.get(
        f"/api/v1/staff/settlement/statement?campaign_id={till.campaign_id}", headers=as_(FINANCE)
    )
    assert statement.json()["subsidy_paid_fen"] == 3_000
