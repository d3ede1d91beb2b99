"""A hypothesis state machine over the life of a campaign's money: claim, redeem, refund, expire,
settle (with the bank paying or failing each payout, and runs killed at a random step and run
again), suspend, reinstate, expel (clawback) and recover. After every step every ledger check holds
(I1-I3 of SPEC §5, settlement's included), and I4: preparing a day again, approving again or
re-importing the bank's file has no second effect.

Fast on purpose: SQLite, a campaign built once and copied per example, a handful of examples.

Replaying: the test prints `settlement machine seed N`. Run it again with the same seed:
    HUIMIN_PROPERTY_SEED=N .venv/bin/pytest tests/property/test_settlement_machine.py
A failure also prints the falsifying steps and a `@reproduce_failure` blob (print_blob).
More examples: HUIMIN_PROPERTY_EXAMPLES=100.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import hypothesis.core
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.campaigns.models import CampaignRow
from huimin.claims.flows import expire_and_recycle
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock, local_date
from huimin.ledger import service as ledger
from huimin.ledger.checks import run_checks
from huimin.ledger.models import LedgerTransactionRow
from huimin.merchants.domain import Action
from huimin.merchants.models import MerchantRow
from huimin.migrate import upgrade
from huimin.settlement import domain, service
from huimin.settlement.domain import LineStatus
from huimin.settlement.reconcile import reconcile
from tests.integration.merchant_helpers import OPERATOR, SEALER, take
from tests.integration.till import FINANCE, OPENS, Till, fund, open_till
from tests.support import SignedClient

BANK = SEALER.bank_account
MERCHANTS = ("catering", "retail", "catering_2")
CATEGORY = {"catering": "catering", "retail": "retail", "catering_2": "catering"}
STEPS = ("attached", "prepared", "posted", "approved")


class Crash(Exception):
    pass


@asynccontextmanager
async def running(
    url: str, clock: ManualClock
) -> AsyncIterator[tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]]:
    application = create_app(Settings(database_url=url), clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            yield http, application.state.sessions


async def _build_template(path: Path) -> Till:
    url = f"sqlite+aiosqlite:///{path}"
    clock = ManualClock(datetime(2022, 6, 1, tzinfo=UTC))
    async with running(url, clock) as (http, sessions):
        till = await open_till(http, sessions, Settings(database_url=url), clock)
        await fund(sessions, till, clock)
    return till  # the last connection closed checkpoints the WAL into the file


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Till]:
    path = tmp_path_factory.mktemp("settlement-machine") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path, asyncio.run(_build_template(path))


class SettlementMachine(RuleBasedStateMachine):
    template: tuple[Path, Till]
    workdir: Path

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.serial = getattr(SettlementMachine, "_serial", 0) + 1
        SettlementMachine._serial = self.serial  # type: ignore[attr-defined]
        path = self.workdir / f"example-{self.serial}.db"
        shutil.copy(self.template[0], path)
        self.url = f"sqlite+aiosqlite:///{path}"
        self.clock = ManualClock(OPENS + timedelta(minutes=1))
        self.context = running(self.url, self.clock)
        http, self.sessions = self.loop.run_until_complete(self.context.__aenter__())
        base = self.template[1]
        self.till = dataclasses.replace(
            base,
            http=http,
            app=SignedClient(http, key_id=base.app.key_id, secret=base.app.secret, clock=self.clock),
            terminal=SignedClient(
                http, key_id=base.terminal.key_id, secret=base.terminal.secret, clock=self.clock
            ),
            clock=self.clock,
        )
        self.till._residents = 1000 * self.serial  # fresh identities for each example
        self.claimed: list[dict[str, Any]] = []
        self.redeemed: list[str] = []
        self.recovered = False

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.context.__aexit__(None, None, None))
        self.loop.close()

    @initialize()
    def start(self) -> None:
        self.check()

    # Residents and tills

    @precondition(lambda self: not self.recovered and self.clock.now() < OPENS + timedelta(hours=11))
    @rule()
    def claim(self) -> None:
        self.claimed.append(self.run(self.till.voucher()))

    @precondition(lambda self: not self.recovered and bool(self.claimed))
    @rule(merchant=st.sampled_from(MERCHANTS), order=st.integers(10_000, 40_000), pick=st.integers(0, 100))
    def redeem(self, merchant: str, order: int, pick: int) -> None:
        voucher = self.claimed[pick % len(self.claimed)]
        response = self.run(
            self.till.redeem(
                self.till.body(voucher, merchant, category=CATEGORY[merchant], order_amount_fen=order)
            )
        )
        if response.status_code == 201:
            self.claimed.remove(voucher)
            self.redeemed.append(str(response.json()["redemption_id"]))
        else:
            assert response.json()["code"] in {
                "merchant_not_active",
                "voucher_expired",
                "voucher_used",
                "merchant_daily_cap",
            }, response.text

    @precondition(lambda self: not self.recovered and bool(self.redeemed))
    @rule(pick=st.integers(0, 100), amount=st.integers(1, 20_000))
    def refund(self, pick: int, amount: int) -> None:
        response = self.run(self.till.refund(self.redeemed[pick % len(self.redeemed)], amount))
        assert response.status_code in (201, 409, 422), response.text
        if response.status_code != 201:
            assert response.json()["code"] in {
                "settlement_in_progress",
                "merchant_expelled",
                "not_refundable",
                "refund_exceeds_paid",
            }, response.text

    @precondition(lambda self: not self.recovered)
    @rule(days=st.integers(1, 9))
    def expire(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))

        async def job(session: AsyncSession) -> None:
            await expire_and_recycle(session, clock=self.clock)

        self.run(self._unit(job))

    # Merchants

    @precondition(lambda self: not self.recovered)
    @rule(
        merchant=st.sampled_from(MERCHANTS),
        action=st.sampled_from((Action.SUSPEND, Action.REINSTATE, Action.EXPEL)),
    )
    def sanction(self, merchant: str, action: Action) -> None:
        async def job(session: AsyncSession) -> None:
            row = await session.get(MerchantRow, self.till.merchants[merchant])
            assert row is not None
            allowed = {
                Action.SUSPEND: {"active"},
                Action.REINSTATE: {"suspended"},
                Action.EXPEL: {"active", "suspended"},
            }
            if row.status in allowed[action]:
                await take(session, action, row.id, clock=self.clock)

        self.run(self._unit(job))
        self.run(self._unit(lambda session: service.consume_merchant_events(session, clock=self.clock)))

    # Settlement, with crashes

    @precondition(lambda self: not self.recovered)
    @rule(
        outcomes=st.lists(st.booleans(), min_size=8, max_size=8),
        crash=st.sampled_from((None, *STEPS)),
        returned=st.booleans(),
    )
    def settle(self, outcomes: list[bool], crash: str | None, returned: bool) -> None:
        self.clock.advance(timedelta(days=1))
        self._settle_until_now(outcomes, crash, returned=returned)

    def _settle_until_now(self, outcomes: list[bool], crash: str | None, *, returned: bool = False) -> None:
        day = local_date(self.clock.now()) - timedelta(days=1)

        def checkpoint(step: str) -> None:
            if step == crash:
                raise Crash(step)

        async def prepare(session: AsyncSession, point: service.Checkpoint = service._carry_on) -> Any:
            return await service.prepare(
                session,
                principal=OPERATOR,
                campaign_id=self.till.campaign_id,
                day=day,
                clock=self.clock,
                checkpoint=point,
            )

        before = self.run(self._snapshot())
        if crash in ("attached", "prepared"):
            with pytest.raises(Crash):
                self.run(self._unit(lambda session: prepare(session, checkpoint)))
            assert self.run(self._snapshot()) == before, "a killed preparation left something behind"
        run = self.run(self._unit(prepare))
        assert self.run(self._unit(prepare)).id == run.id  # I4: the same day, the same run
        if returned and run.status == "prepared":
            # finance returns (退回) the run: nothing was posted, and the day prepares again, the same
            returned_run = run
            self.run(
                self._unit(
                    lambda session: service.return_run(
                        session,
                        principal=FINANCE,
                        run_id=returned_run.id,
                        reason="核对数据",
                        clock=self.clock,
                    )
                )
            )
            self.check()
            run = self.run(self._unit(prepare))
            assert run.id != returned_run.id
            assert (run.total_fen, run.subsidy_fen) == (returned_run.total_fen, returned_run.subsidy_fen)

        async def approve(session: AsyncSession, point: service.Checkpoint = service._carry_on) -> Any:
            return await service.approve(
                session, principal=FINANCE, run_id=run.id, clock=self.clock, sealer=BANK, checkpoint=point
            )

        if run.status == "prepared":
            if crash in ("posted", "approved"):
                mid = self.run(self._snapshot())
                with pytest.raises(Crash):
                    self.run(self._unit(lambda session: approve(session, checkpoint)))
                assert self.run(self._snapshot()) == mid, "a killed approval left something behind"
            run = self.run(self._unit(approve))
        detail = self.run(
            self._unit(lambda session: service.get_run(session, principal=FINANCE, run_id=run.id))
        )
        sent = [line for line in detail.lines if line.status == LineStatus.SENT.value]
        if not sent:
            return
        rows = ["payout_reference,amount_fen,status,bank_transaction_id,reason"]
        for index, line in enumerate(sent):
            paid = outcomes[index % len(outcomes)]
            reference = domain.payout_reference(run.id, line.seq)
            rows.append(
                f"{reference},{line.amount_fen},{'paid' if paid else 'failed'},{'BK' + reference[-8:] if paid else ''},"
            )
        content = ("\n".join(rows) + "\n").encode()

        async def answer(session: AsyncSession) -> service.BankImportReport:
            return await service.import_bank_file(
                session,
                principal=OPERATOR,
                campaign_id=self.till.campaign_id,
                content=content,
                clock=self.clock,
            )

        report = self.run(self._unit(answer))
        assert report.applied == len(sent)
        assert not report.differences
        after = self.run(self._snapshot())
        again = self.run(self._unit(answer))
        assert again.applied == 0
        assert again.already_applied == len(sent)
        assert self.run(self._snapshot()) == after

    # The end

    @precondition(lambda self: not self.recovered)
    @rule()
    def recover(self) -> None:
        if self.clock.now() < datetime(2023, 1, 2, 1, tzinfo=UTC):
            self.clock.set(datetime(2023, 1, 2, 1, tzinfo=UTC))
        self.run(self._unit(lambda session: expire_and_recycle(session, clock=self.clock)))
        for _ in range(3):  # settle what is due; failed payouts are retried until paid
            self._settle_until_now([True], None)
            self.clock.advance(timedelta(days=1))

        async def request(session: AsyncSession) -> Any:
            return await service.request_recovery(
                session, principal=OPERATOR, campaign_id=self.till.campaign_id, clock=self.clock
            )

        requested = self.run(self._unit(request))
        self.run(
            self._unit(
                lambda session: service.approve_recovery(
                    session, principal=FINANCE, recovery_id=requested.id, clock=self.clock
                )
            )
        )
        balances = self.run(
            self._unit(lambda session: ledger.balances(session, campaign_id=self.till.campaign_id))
        )
        for key, value in balances.items():
            if key.split(":")[0] in ("budget", "vouchers", "expired", "clearing", "pending"):
                assert value == 0, (key, value)
        self.recovered = True

    @rule()
    def reconcile(self) -> None:
        """Every settled day reconciles with no difference (also the one rule left after recovery)."""

        async def job(session: AsyncSession) -> list[Any]:
            days = {
                run.business_day
                for run in await service.list_runs(
                    session, principal=FINANCE, campaign_id=self.till.campaign_id
                )
            }
            found = []
            for day in sorted(days):
                report = await reconcile(session, principal=FINANCE, day=day, sealer=BANK)
                found += report.differences
            return found

        differences = self.run(self._unit(job))
        assert not differences, differences

    @invariant()
    def check(self) -> None:
        async def job(session: AsyncSession) -> list[Any]:
            campaign = await session.get(CampaignRow, self.till.campaign_id)
            assert campaign is not None
            report = await run_checks(session, campaign)
            return [
                (result.invariant, result.name, result.figures, result.problems)
                for result in report.results
                if not result.ok
            ]

        failed = self.run(self._unit(job))
        assert not failed, failed

    async def _unit(self, job: Any) -> Any:
        async with unit_of_work(self.sessions) as session:
            return await job(session)

    async def _snapshot(self) -> tuple[Any, ...]:
        async with unit_of_work(self.sessions) as session:
            count = await session.scalar(select(func.count()).select_from(LedgerTransactionRow))
            balances = await ledger.balances(session, campaign_id=self.till.campaign_id)
            runs = await service.list_runs(session, principal=FINANCE, campaign_id=self.till.campaign_id)
            return count, tuple(balances.items()), tuple((run.id, run.status) for run in runs)


def test_settlement_keeps_the_invariants(template: tuple[Path, Till], tmp_path: Path) -> None:
    seed = int(os.environ.get("HUIMIN_PROPERTY_SEED") or random.randrange(2**32))  # noqa: S311 - a test seed
    print(f"settlement machine seed {seed} (replay: HUIMIN_PROPERTY_SEED={seed})")
    SettlementMachine.template = template
    SettlementMachine.workdir = tmp_path
    previous = hypothesis.core.global_force_seed
    hypothesis.core.global_force_seed = seed  # type: ignore[assignment]
    try:
        run_state_machine_as_test(
            SettlementMachine,
            settings=settings(
                max_examples=int(os.environ.get("HUIMIN_PROPERTY_EXAMPLES", "6")),
                stateful_step_count=18,
                deadline=None,
                database=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        hypothesis.core.global_force_seed = previous
