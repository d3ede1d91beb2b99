"""A settlement run over a million redemptions on PostgreSQL: prepare + approve + clearing file.

Run:
  .venv/bin/python bench/bench_settlement.py [--redemptions 1000000] [--merchants 5000] [--json]

A fresh database `huimin_bench_<random>` is created on the server of HUIMIN_BENCH_POSTGRES_URL (an
admin URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test), migrated, and dropped at the
end. Setup (not timed): a one-batch campaign, `--merchants` active merchants with sealed bank
accounts, and `--redemptions` confirmed redemptions of one business day spread over them, with their
vouchers, bulk-inserted with generate_series; the ledger gets the deposit and, per merchant, the
payable its redemptions put there. Then, timed, each in its own transaction as in production:
prepare (operator), approve (finance: postings and the clearing file's SHA-256), the clearing file
rendered and written (temp file + rename); then, also timed, the bank's confirmation of every payout
(every redemption and voucher marked settled) and a reconciliation of the day. Preparing the day
again is timed too (it must answer the same run and write nothing). `huimin ledger check` figures
are not run: the synthetic ledger only holds what the run reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from huimin.auth.principals import Principal, Role
from huimin.campaigns.service import load_campaign
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.money import Fen
from huimin.ledger import domain as ledger
from huimin.ledger import service as ledger_service
from huimin.merchants.service import MerchantSealer
from huimin.migrate import upgrade
from huimin.settlement import domain, service
from huimin.settlement.reconcile import reconcile

ADMIN_URL = os.environ.get("HUIMIN_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
OPERATOR = Principal(actor_id="usr_operator", role=Role.OPERATOR, name="银联 李强")
FINANCE = Principal(actor_id="usr_finance", role=Role.FINANCE, name="市财政局 刘洋")
FINANCE_2 = Principal(actor_id="usr_finance_2", role=Role.FINANCE, name="市财政局 周敏")
DAY = date(2022, 6, 24)
SUBSIDY = 3_000

CAMPAIGN = """
[campaign]
code = "bench-2022"
name = "结算基准"
starts_on = 2022-06-01
ends_on = 2022-12-31
budget = "80000000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "80000000"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "30"
threshold = "100"
validity = { days_after_claim = 7 }
funding = { fiscal = "100%" }
scope = { categories = ["餐饮"] }
limits = { per_person_per_round = 5 }

[[schedules]]
code = "friday"
every = "once"
at = 10:00:00
first = 2022-06-24
window_hours = 12
stock = { "general" = 10 }
"""


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(_dsn(ADMIN_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def setup(url: str, redemptions: int, merchants: int, sealer: MerchantSealer) -> str:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = ManualClock(datetime(2022, 6, 1, tzinfo=UTC))
    async with unit_of_work(sessions) as session:
        campaign_id = (await load_campaign(session, text=CAMPAIGN, clock=clock)).campaign_id
    sealed = sealer.bank_account.seal("6222021234567890123")
    started = time.perf_counter()
    async with engine.begin() as connection:

        async def run(sql: str, **params: Any) -> None:
            await connection.execute(text(sql), params)

        ids = {
            "campaign": campaign_id,
            "batch": (
                await connection.execute(
                    text("SELECT id FROM batches WHERE campaign_id = :c"), {"c": campaign_id}
                )
            ).scalar_one(),
            "round": (
                await connection.execute(
                    text("SELECT id FROM rounds WHERE campaign_id = :c"), {"c": campaign_id}
                )
            ).scalar_one(),
        }
        now = datetime(2022, 6, 24, 3, tzinfo=UTC)
        await run(
            "INSERT INTO partners (id, name, kind, key_id, secret_sealed, created_at) "
            "VALUES ('ptn_bench', 'bench', 'app', 'bench-key', CAST(:s AS bytea), CAST(:now AS timestamptz))",
            s=b"x",
            now=now,
        )
        await run(
            "INSERT INTO persons (id, created_at) VALUES ('prs_bench', CAST(:now AS timestamptz))", now=now
        )
        await run(
            "INSERT INTO residents (id, partner_id, app_user_id, person_id, real_name_verified, id_number_digest, "
            "id_number_masked, phone_digest, phone_masked, device_digest, registered_at, updated_at) VALUES "
            "('res_bench', 'ptn_bench', 'bench', 'prs_bench', true, 'd', 'm', 'd', 'm', 'd', CAST(:now AS timestamptz), CAST(:now AS timestamptz))",
            now=now,
        )
        await run(
            """
            INSERT INTO merchants (id, campaign_id, credit_code, legal_name, jurisdiction, category, merchant_class,
                registered_address, business_hours, bank_name, bank_account_sealed, bank_account_masked,
                contact_name, contact_phone_masked, status, invited_at, status_changed_at, commitment_sha256)
            SELECT 'mch_' || lpad(i::text, 26, '0'), :campaign, '9251200' || lpad(i::text, 11, '0'),
                   '资阳市基准商贸有限公司' || i, 'yanjiang', 'catering', 'above_quota', '资阳市雁江区', '09:00-21:00',
                   '中国工商银行资阳分行', CAST(:sealed AS bytea), '622***********0123', '陈静', '138****5678', 'active', CAST(:now AS timestamptz), CAST(:now AS timestamptz),
                   repeat('0', 64)
            FROM generate_series(1, :merchants) AS i
            """,
            campaign=campaign_id,
            sealed=sealed,
            now=now,
            merchants=merchants,
        )
        await run(
            """
            INSERT INTO vouchers (id, code, campaign_id, batch_id, round_id, resident_id, person_id, status, value_fen,
                claimed_at, valid_until, district)
            SELECT 'vch_' || lpad(i::text, 26, '0'), 'B' || lpad(i::text, 16, '0'), :campaign, :batch, :round,
                   'res_bench', 'prs_bench', 'redeemed', CAST(:subsidy AS bigint), CAST(:now AS timestamptz), CAST(:now AS timestamptz) + interval '7 days', 'yanjiang'
            FROM generate_series(1, :n) AS i
            """,
            n=redemptions,
            subsidy=SUBSIDY,
            now=now,
            **ids,
        )
        await run(
            """
            INSERT INTO redemptions (id, campaign_id, voucher_id, batch_id, person_id, merchant_id, terminal_id, partner_id,
                jurisdiction, category, status, order_fen, merchant_discount_fen, voucher_value_fen, subsidy_fen,
                refunded_fen, subsidy_returned_fen, redeemed_at, business_day)
            SELECT 'rdm_' || lpad(i::text, 26, '0'), :campaign, 'vch_' || lpad(i::text, 26, '0'), :batch, 'prs_bench',
                   'mch_' || lpad((1 + i % :merchants)::text, 26, '0'), 'T0000001', 'ptn_bench', 'yanjiang', 'catering',
                   'confirmed', 12000, 0, CAST(:subsidy AS bigint), CAST(:subsidy AS bigint), 0, 0, CAST(:now AS timestamptz), CAST(:day AS date)
            FROM generate_series(1, :n) AS i
            """,
            n=redemptions,
            merchants=merchants,
            subsidy=SUBSIDY,
            now=now,
            day=DAY,
            campaign=campaign_id,
            batch=ids["batch"],
        )
        for table in ("redemptions", "vouchers", "merchants"):
            await run(f"ANALYZE {table}")
    async with unit_of_work(sessions) as session:
        # The money the redemptions put in payable: one transaction per merchant (not per redemption).
        per = {
            merchant_id: int(total)
            for merchant_id, total in await session.execute(
                text("SELECT merchant_id, sum(subsidy_fen) FROM redemptions GROUP BY merchant_id")
            )
        }
        total = sum(per.values())
        transactions = [ledger.deposit("bench-deposit", funder_code="fiscal", amount=total)]
        transactions += [
            ledger.Transaction.of(
                ledger.TransactionKind.REDEEM,
                f"bench-{merchant_id[-8:]}",
                [(ledger.payable(merchant_id), fen), (ledger.budget("fiscal"), -fen)],
            )
            for merchant_id, fen in per.items()
        ]
        await ledger_service.post_many(
            session, campaign_id=campaign_id, transactions=transactions, at=clock.now()
        )
    await engine.dispose()
    print(
        f"setup: {redemptions:,} redemptions over {merchants:,} merchants in {time.perf_counter() - started:.1f} s"
    )
    return campaign_id


async def bench(url: str, campaign_id: str, sealer: MerchantSealer, out_dir: Path) -> dict[str, Any]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = ManualClock(datetime(2022, 6, 25, 1, tzinfo=UTC))
    figures: dict[str, Any] = {}

    async def timed(name: str, job: Any) -> Any:
        started = time.perf_counter()
        async with unit_of_work(sessions) as session:
            result = await job(session)
        figures[name] = round(time.perf_counter() - started, 3)
        print(f"{name}: {figures[name]}", flush=True)
        return result

    run = await timed(
        "prepare_s",
        lambda session: service.prepare(
            session, principal=OPERATOR, campaign_id=campaign_id, day=DAY, clock=clock
        ),
    )
    approvers = [FINANCE, FINANCE_2][: run.approvals_needed]  # two above the threshold (SPEC §11.3)
    started = time.perf_counter()
    for approver in approvers:
        async with unit_of_work(sessions) as session:
            run = await service.approve(
                session, principal=approver, run_id=run.id, clock=clock, sealer=sealer.bank_account
            )
    figures["approve_s"] = round(time.perf_counter() - started, 3)
    figures["approvers"] = len(approvers)
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        file = await service.clearing_file(
            session, principal=FINANCE, run_id=run.id, sealer=sealer.bank_account, clock=clock
        )
    path = service.write_clearing_file(out_dir, file)
    figures["clearing_file_s"] = round(time.perf_counter() - started, 3)
    figures["run_total_s"] = round(
        figures["prepare_s"] + figures["approve_s"] + figures["clearing_file_s"], 3
    )
    figures["payouts"], figures["total"] = run.lines, Fen(run.total_fen).format()
    figures["file_bytes"] = path.stat().st_size
    again = await timed(
        "prepare_again_s",
        lambda session: service.prepare(
            session, principal=OPERATOR, campaign_id=campaign_id, day=DAY, clock=clock
        ),
    )
    assert again.id == run.id
    async with unit_of_work(sessions) as session:
        detail = await service.get_run(session, principal=FINANCE, run_id=run.id)
    rows = ["payout_reference,amount_fen,status,bank_transaction_id,reason"]
    rows += [
        f"{domain.payout_reference(run.id, line.seq)},{line.amount_fen},paid,BK{line.seq},"
        for line in detail.lines
    ]
    content = ("\n".join(rows) + "\n").encode()
    report = await timed(
        "bank_import_s",
        lambda session: service.import_bank_file(
            session, principal=OPERATOR, campaign_id=campaign_id, content=content, clock=clock
        ),
    )
    assert report.applied == run.lines
    assert not report.differences
    clean = await timed(
        "reconcile_s",
        lambda session: reconcile(session, principal=FINANCE, day=DAY, sealer=sealer.bank_account),
    )
    assert clean.clean, clean.differences[:5]
    await engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redemptions", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=5_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    name = f"huimin_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    sealer = MerchantSealer("bench-secret-key-for-settlement-0123456789")
    try:
        upgrade(url)
        campaign_id = asyncio.run(setup(url, args.redemptions, args.merchants, sealer))
        with tempfile.TemporaryDirectory() as out_dir:
            figures = asyncio.run(bench(url, campaign_id, sealer, Path(out_dir)))
        figures.update(redemptions=args.redemptions, merchants=args.merchants)
        if args.json:
            print(json.dumps(figures, ensure_ascii=False))
        else:
            for key, value in figures.items():
                print(f"{key:>18}: {value}")
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
