"""Dashboard queries at the scale of 10,000,000 redemptions, on PostgreSQL (issue 10).

The dashboard never reads the raw rows: it sums the rollup tables that `huimin report rollup` keeps. So
this benchmark loads the Ziyang 2022 campaign file (its real rounds and batches), 10,000 merchants, and
rollup rows of the size that 10,000,000 redemptions and 20,000,000 claims over the campaign's 214 days
produce (every day × the rounds whose vouchers are still valid × batch × jurisdiction × category ×
merchant class, with counts that add up to 10 M), then times every figure query the API serves through
`reports.service.figures` (the same code path as `GET /api/v1/staff/reports/figures`).

    .venv/bin/python bench/bench_reports.py [--redemptions 10000000] [--repeat 5]

Needs HUIMIN_BENCH_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test): an admin
URL; a scratch database is created and dropped. Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from huimin.auth.principals import Principal, Role
from huimin.campaigns.models import BatchRow, RoundRow
from huimin.campaigns.service import load_campaign
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.kit.clock import ManualClock, local_date
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants.models import MerchantRow
from huimin.migrate import upgrade
from huimin.reports import service
from huimin.reports.domain import Dimension
from huimin.reports.models import AccountBalanceRow, MerchantTotalRow, RedemptionDayRow, VoucherDayRow
from huimin.reports.repository import ALL

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("HUIMIN_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MERCHANTS = 10_000
CITY = Principal(actor_id="bench", role=Role.CITY_ADMIN, name="bench")
COUNTY = Principal(actor_id="bench-county", role=Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.ANYUE)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(
        make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(False)
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def load(url: str, redemptions: int) -> tuple[str, ManualClock, dict[str, int]]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = ManualClock(datetime(2022, 5, 31, 16, 0, tzinfo=UTC))
    rng = random.Random(10)
    async with unit_of_work(sessions) as session:
        outcome = await load_campaign(
            session, text=(ROOT / "campaigns" / "ziyang-2022.toml").read_text(encoding="utf-8"), clock=clock
        )
        campaign_id = outcome.campaign_id
        rounds = (
            await session.execute(
                select(RoundRow.id, RoundRow.opens_at).where(RoundRow.campaign_id == campaign_id)
            )
        ).all()
        batches = (
            await session.execute(
                select(BatchRow.id, BatchRow.categories).where(BatchRow.campaign_id == campaign_id)
            )
        ).all()
    jurisdictions = [member.value for member in Jurisdiction]
    classes = [member.value for member in MerchantClass]
    categories = [member.value for member in Category]
    merchants = [
        {
            "id": f"mch_{index:012d}",
            "campaign_id": campaign_id,
            "credit_code": f"{index:018d}",
            "legal_name": f"资阳示例商户{index:05d}",
            "jurisdiction": rng.choice(jurisdictions),
            "category": rng.choice(categories),
            "merchant_class": rng.choice(classes),
            "status": "invited",  # later states need a complete file; the figures do not read it
            "invited_at": clock.now(),
            "status_changed_at": clock.now(),
        }
        for index in range(MERCHANTS)
    ]
    first_day, last_day = date(2022, 6, 1), date(2022, 12, 31)
    days = [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
    opened = sorted((local_date(opens_at), round_id) for round_id, opens_at in rounds)
    redemption_rows, voucher_rows = [], []
    for day in days:
        live = [round_id for opens, round_id in opened if opens <= day][-3:]  # vouchers valid about a week
        for round_id in live:
            for batch_id, batch_categories in batches:
                for district in ("yanjiang", "anyue", "lezhi"):
                    voucher_rows.append((campaign_id, day, round_id, batch_id, district))
                for jurisdiction in jurisdictions:
                    for category in batch_categories:
                        for merchant_class in classes:
                            redemption_rows.append(
                                (campaign_id, day, round_id, batch_id, jurisdiction, category, merchant_class)
                            )
    # The rollup also writes rows summing over the merchant's dimensions (reports/rollup.py `_slices`) and
    # over the districts: the same here, so that every query reads what it would read in production.
    fine = len(redemption_rows)
    sliced = set()
    for campaign, day, round_id, batch_id, jurisdiction, category, merchant_class in redemption_rows:
        head = (campaign, day, round_id, batch_id)
        sliced |= {
            (*head, jurisdiction, ALL, ALL),
            (*head, ALL, category, ALL),
            (*head, ALL, ALL, merchant_class),
            (*head, ALL, ALL, ALL),
        }
    voucher_rows += list({(*key[:4], ALL) for key in voucher_rows})
    per_bucket = max(1, redemptions // fine)
    claims_per_bucket = max(1, 2 * redemptions // len(voucher_rows))
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        await session.execute(insert(MerchantRow), merchants)
        keys = ("campaign_id", "day", "round_id", "batch_id", "jurisdiction", "category", "merchant_class")
        weight = Counter()
        for campaign, day, round_id, batch_id, jurisdiction, category, merchant_class in redemption_rows:
            head = (campaign, day, round_id, batch_id)
            for key in (
                (*head, jurisdiction, ALL, ALL),
                (*head, ALL, category, ALL),
                (*head, ALL, ALL, merchant_class),
                (*head, ALL, ALL, ALL),
            ):
                weight[key] += 1
        redemption_rows = [*redemption_rows, *sorted(sliced)]
        for start in range(0, len(redemption_rows), 20_000):
            await session.execute(
                insert(RedemptionDayRow),
                [
                    dict(zip(keys, key, strict=True)) | _measures(per_bucket * weight.get(key, 1))
                    for key in redemption_rows[start : start + 20_000]
                ],
            )
        voucher_keys = ("campaign_id", "day", "round_id", "batch_id", "district")
        await session.execute(
            insert(VoucherDayRow),
            [
                dict(zip(voucher_keys, key, strict=True))
                | {
                    "issued": claims_per_bucket * (3 if key[4] == ALL else 1),
                    "issued_fen": claims_per_bucket * (3 if key[4] == ALL else 1) * 3_000,
                    "new_claimers": claims_per_bucket // 4 * (3 if key[4] == ALL else 1),
                }
                for key in voucher_rows
            ],
        )
        await session.execute(
            insert(MerchantTotalRow),
            [
                {
                    "campaign_id": campaign_id,
                    "merchant_id": merchant["id"],
                    "jurisdiction": merchant["jurisdiction"],
                    "first_day": first_day,
                    "last_day": last_day,
                    "redeemed": redemptions // MERCHANTS,
                    "payable_fen": redemptions // MERCHANTS * 15_500,
                    "subsidy_fen": redemptions // MERCHANTS * 3_000,
                }
                for merchant in merchants
            ],
        )
        await session.execute(
            insert(AccountBalanceRow),
            [
                {
                    "campaign_id": campaign_id,
                    "account": f"{kind}:{merchant['id']}",
                    "total_fen": 1_000,
                    "postings": 200,
                }
                for merchant in merchants
                for kind in ("payable", "settled", "receivable", "pending")
            ],
        )
    loaded = time.perf_counter() - started
    await engine.dispose()
    return (
        campaign_id,
        clock,
        {
            "report_redemption_days": len(redemption_rows),
            "of which full combinations": fine,
            "report_voucher_days": len(voucher_rows),
            "redemptions represented": per_bucket * fine,
            "load seconds": round(loaded),
        },
    )


def _measures(count: int) -> dict[str, int]:
    return {
        "redeemed": count,
        "order_fen": count * 16_000,
        "discount_fen": count * 500,
        "payable_fen": count * 15_500,
        "subsidy_fen": count * 3_000,
        "refunds": count // 40,
        "refund_fen": count // 40 * 15_500,
        "refund_subsidy_fen": count // 40 * 3_000,
        "refunded_full": count // 40,
        "new_spenders": count // 3,
        "new_merchants": 1,
    }


QUERIES: list[tuple[str, Principal, service.Query]] = [
    ("headline (live)", CITY, service.Query()),
    ("by day", CITY, service.Query(by=Dimension.DAY)),
    ("by week", CITY, service.Query(by=Dimension.WEEK)),
    ("by round", CITY, service.Query(by=Dimension.ROUND)),
    ("by batch", CITY, service.Query(by=Dimension.BATCH)),
    ("by district (map)", CITY, service.Query(by=Dimension.DISTRICT)),
    ("by jurisdiction", CITY, service.Query(by=Dimension.JURISDICTION)),
    ("by category", CITY, service.Query(by=Dimension.CATEGORY)),
    ("by merchant class", CITY, service.Query(by=Dimension.MERCHANT_CLASS)),
    (
        "one week, by day",
        CITY,
        service.Query(since=date(2022, 9, 5), until=date(2022, 9, 11), by=Dimension.DAY),
    ),
    ("county (安岳县), by category", COUNTY, service.Query(by=Dimension.CATEGORY)),
]


async def measure(url: str, campaign_id: str, clock: ManualClock, repeat: int) -> None:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock.set(datetime(2022, 12, 31, 15, 0, tzinfo=UTC))
    print(f"{'query':34} {'median ms':>10} {'max ms':>8}  lines")
    try:
        for name, principal, query in QUERIES:
            samples, lines = [], 0
            for _ in range(repeat + 1):
                started = time.perf_counter()
                async with unit_of_work(sessions) as session:
                    report = await service.figures(
                        session, principal=principal, campaign_id=campaign_id, query=query, clock=clock
                    )
                samples.append((time.perf_counter() - started) * 1000)
                lines = len(report.lines)
            samples = samples[1:]  # the first warms the connection pool and the plan cache
            print(f"{name:34} {statistics.median(samples):10.1f} {max(samples):8.1f}  {lines}")
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            async with unit_of_work(sessions) as session:
                found = await service.merchant_lines(
                    session, principal=CITY, campaign_id=campaign_id, limit=20
                )
            samples.append((time.perf_counter() - started) * 1000)
        print(
            f"{'top 20 of 10,000 merchants':34} {statistics.median(samples):10.1f} {max(samples):8.1f}  {len(found)}"
        )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redemptions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    name = f"huimin_bench_reports_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        campaign_id, clock, sizes = asyncio.run(load(url, arguments.redemptions))
        for key, value in sizes.items():
            print(f"{key}: {value:,}")
        asyncio.run(measure(url, campaign_id, clock, arguments.repeat))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
