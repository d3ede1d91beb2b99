"""End-to-end redemption at the till (核销) over HTTP: signed redemptions against `huimin serve`, then a
no-double-spend check in the database.

Run:
  .venv/bin/python bench/bench_redemptions.py --backend postgres --workers 2 [--redis] [--json]
  .venv/bin/python bench/bench_redemptions.py --backend sqlite

PostgreSQL: a fresh database `huimin_bench_<random>` on the server of HUIMIN_BENCH_POSTGRES_URL (an admin
URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test), dropped at the end. SQLite: a file in a
temporary directory. `--redis` also gives the server HUIMIN_REDIS_URL (HUIMIN_BENCH_REDIS_URL, default
redis://127.0.0.1:6379/0), the production shape, where the server keeps request nonces in Redis.

Setup (not timed): migrate with `huimin db upgrade`; load a campaign with one 满100减30 batch (catering
and retail) and one first-come round that opened a minute ago; create an app and a terminal partner
with `huimin partner create`; then, in this process through the merchants service, `--merchants`
merchants each walked invited → applied → submitted → approved → listed → active by the people the
seed names, each with one till terminal; and residents holding `--vouchers` claimed vouchers.
**The residents and their vouchers are written in bulk with SQL, bypassing the claim API** (claiming
through HTTP costs as much as a redemption and would dominate the setup): persons, their hashed
identifiers, residents, vouchers with a `claimed` event, the round's stock and the per-person counters,
as a claim leaves them. The claims' ledger postings are not written, so `huimin ledger check` does not
balance on a bench database; nothing here reads the ledger.

The timed part goes through HTTP only: `--attempts` signed redemptions with their own Idempotency-Key,
`--concurrency` in flight, each spending a different voucher at a random merchant's terminal with an
order amount around the threshold (some below it: `below_threshold`), a share of them (`--duplicates`)
spending a voucher an earlier attempt already used (`voucher_used`, unless that one was refused) and a
share (`--retries`) repeated with the same key and body once answered, which must get the same answer.

Afterwards the database is read directly: at most one redemption holds each voucher, every 201 has its
row, and the vouchers marked redeemed are exactly the confirmed redemptions. The script exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import (
    DEFAULT_REDIS_URL,
    LOCAL_TZ,
    UNLIMITED,
    LoadResult,
    Measurement,
    Partner,
    commit,
    cpu_figures,
    create_partner,
    database,
    drive,
    encode,
    fresh_database,
    huimin,
    keep_server_log,
    measuring,
    print_cpu,
    print_errors,
    print_load,
    profiled,
    row,
    server,
    throughput,
)
from loadgen import Connection
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from huimin.auth.models import PartnerRow
from huimin.auth.principals import Principal, Role
from huimin.campaigns.models import BatchRow, CampaignRow, RoundRow, StockShardRow
from huimin.claims.domain import VoucherStatus, new_voucher_code
from huimin.claims.models import ClaimCounterRow, VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.eligibility.identity import id_check_digit
from huimin.eligibility.models import PersonIdentifierRow, PersonRow, ResidentRow
from huimin.kit.clock import SystemClock
from huimin.kit.hashing import mask
from huimin.kit.ids import new_id
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.merchants import service as merchants
from huimin.merchants.domain import Application, Invitation, credit_code_check_character
from huimin.redemptions.domain import HOLDS_VOUCHER

FACE_VALUE_YUAN = 30
THRESHOLD_FEN = 10_000
SEED = 20220624
VOUCHERS_PER_RESIDENT = 2
CATEGORIES = (Category.CATERING, Category.RETAIL)
JURISDICTIONS = (Jurisdiction.YANJIANG, Jurisdiction.ANYUE, Jurisdiction.LEZHI)


# --- the campaign ---------------------------------------------------------------------------------


def campaign_toml(*, code: str, stock: int, opens: datetime) -> str:
    """One first-come round of one 满100减30 batch for catering and retail, open from `opens` (local
    time) for three hours; vouchers valid 7 days after they are claimed. The budget is what the stock
    reserves."""
    budget = stock * FACE_VALUE_YUAN
    starts_on: date = opens.date() - timedelta(days=1)
    ends_on: date = opens.date() + timedelta(days=30)
    return f"""
[campaign]
code = "{code}"
name = "核销压测活动"
starts_on = {starts_on.isoformat()}
ends_on = {ends_on.isoformat()}
budget = "{budget}"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "{budget}"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "{FACE_VALUE_YUAN}"
threshold = "{THRESHOLD_FEN // 100}"
validity = {{ days_after_claim = 7 }}
funding = {{ fiscal = "100%" }}
scope = {{ categories = ["餐饮", "零售"] }}
limits = {{ per_person_per_round = {VOUCHERS_PER_RESIDENT} }}

[[schedules]]
code = "bench"
every = "once"
at = {opens:%H:%M:%S}
first = {opens.date().isoformat()}
window_hours = 3
stock = {{ "general" = {stock} }}
"""


# --- setup in process: merchants through the service layer, vouchers in bulk ------------------------

CITY = Principal(actor_id="usr_bench_city", role=Role.CITY_ADMIN, name="市商务局 压测")
OPERATOR = Principal(actor_id="usr_bench_operator", role=Role.OPERATOR, name="银联 压测")


@dataclass(frozen=True)
class Till:
    merchant_id: str
    terminal_id: str
    category: str


def credit_code(serial: int) -> str:
    body = f"92512002{serial:09d}"  # 9: market regulator, 2: individual business
    return body + credit_code_check_character(body)


async def active_merchants(url: str, settings: Settings, campaign_id: str, count: int) -> list[Till]:
    """`count` merchants, each walked to `active` by the right people, with one terminal each."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    sealer = merchants.MerchantSealer(settings.secret_key.get_secret_value())
    tills: list[Till] = []
    try:
        for serial in range(1, count + 1):
            category = CATEGORIES[serial % len(CATEGORIES)]
            jurisdiction = JURISDICTIONS[serial % len(JURISDICTIONS)]
            terminal = f"T{serial:07d}"
            async with unit_of_work(sessions) as session:
                invited = await merchants.invite(
                    session,
                    principal=CITY,
                    campaign_id=campaign_id,
                    invitation=Invitation(
                        credit_code=credit_code(serial),
                        legal_name=f"资阳市压测商贸有限公司{serial}号店",
                        jurisdiction=jurisdiction,
                        category=category,
                        merchant_class=MerchantClass.ABOVE_QUOTA,
                        registered_address=f"资阳市{jurisdiction.label}压测路{serial}号",
                    ),
                    sealer=sealer,
                    clock=clock,
                )
                merchant_id = invited.id
                await merchants.apply(
                    session,
                    principal=OPERATOR,
                    merchant_id=merchant_id,
                    application=Application(
                        registered_address=f"资阳市{jurisdiction.label}压测路{serial}号",
                        business_hours="09:00-21:00",
                        terminals=(terminal,),
                        bank_name="中国工商银行资阳分行",
                        bank_account="6222021234567890123",
                        contact_name="陈静",
                        contact_phone="13812345678",
                    ),
                    sealer=sealer,
                    clock=clock,
                )
                await merchants.submit(session, principal=OPERATOR, merchant_id=merchant_id, clock=clock)
                reviewer = Principal(
                    actor_id=f"usr_bench_reviewer_{jurisdiction.value}",
                    role=Role.COUNTY_REVIEWER,
                    jurisdiction=jurisdiction,
                    name=f"{jurisdiction.label}商务局 压测",
                )
                await merchants.review(
                    session,
                    principal=reviewer,
                    merchant_id=merchant_id,
                    approve=True,
                    reason="材料齐全",
                    clock=clock,
                )
            tills.append(Till(merchant_id, terminal, category.value))
        async with unit_of_work(sessions) as session:
            await merchants.publish(
                session,
                principal=CITY,
                campaign_id=campaign_id,
                merchant_ids=[till.merchant_id for till in tills],
                clock=clock,
            )
        commitment = merchants.commitment_text()
        for till in tills:
            async with unit_of_work(sessions) as session:
                await merchants.accept_commitment(
                    session,
                    principal=Principal(
                        actor_id=f"usr_{till.merchant_id}",
                        role=Role.MERCHANT,
                        merchant_id=till.merchant_id,
                        name="店长 陈静",
                    ),
                    merchant_id=till.merchant_id,
                    version=commitment.version,
                    sha256=commitment.sha256,
                    signatory="陈静",
                    clock=clock,
                )
    finally:
        await engine.dispose()
    return tills


def id_number(serial: int) -> str:
    """A well-formed ID number (GB 11643 check digit) of a Yanjiang resident, distinct per serial."""
    born = date(1960, 1, 1) + timedelta(days=serial // 1000)
    body = f"512002{born:%Y%m%d}{serial % 1000:03d}"
    return body + id_check_digit(body)


async def analyze(url: str, tables: list[str]) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"ANALYZE {', '.join(tables)}"))
    finally:
        await engine.dispose()


async def claimed_vouchers(url: str, settings: Settings, *, app_key_id: str, count: int) -> list[str]:
    """`count` claimed vouchers of the round's batch, VOUCHERS_PER_RESIDENT per resident, written in bulk
    as the claim path leaves them (minus the ledger postings); their codes."""
    hasher = settings.hasher
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    async with database(url) as connection:
        partner_id = await connection.scalar(select(PartnerRow.id).where(PartnerRow.key_id == app_key_id))
        round_id, batch_id, campaign_id, value_fen = (
            await connection.execute(
                select(RoundRow.id, BatchRow.id, CampaignRow.id, BatchRow.max_value_fen)
                .join(BatchRow, BatchRow.campaign_id == RoundRow.campaign_id)
                .join(CampaignRow, CampaignRow.id == RoundRow.campaign_id)
            )
        ).one()
        residents = -(-count // VOUCHERS_PER_RESIDENT)
        persons: list[dict[str, Any]] = []
        identifiers: list[dict[str, Any]] = []
        resident_rows: list[dict[str, Any]] = []
        vouchers: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        counters: list[dict[str, Any]] = []
        codes: list[str] = []
        for serial in range(residents):
            person_id, resident_id = new_id("per"), new_id("res")
            id_no, phone = id_number(serial), f"139{serial:08d}"
            persons.append({"id": person_id, "created_at": now})
            for kind, value in (("id_number", id_no), ("phone", phone)):
                identifiers.append(
                    {
                        "kind": kind,
                        "digest": hasher.digest(kind, value),
                        "person_id": person_id,
                        "masked": mask(value),
                    }
                )
            resident_rows.append(
                {
                    "id": resident_id,
                    "partner_id": partner_id,
                    "app_user_id": f"bench-user-{serial}",
                    "person_id": person_id,
                    "real_name_verified": True,
                    "id_number_digest": hasher.digest("id_number", id_no),
                    "id_number_masked": mask(id_no),
                    "phone_digest": hasher.digest("phone", phone),
                    "phone_masked": mask(phone),
                    "device_digest": hasher.digest("device", f"bench-device-{serial}"),
                    "registered_at": now,
                    "updated_at": now,
                }
            )
            held = min(VOUCHERS_PER_RESIDENT, count - len(vouchers))
            counters.append({"person_id": person_id, "scope": f"r:{round_id}:b:{batch_id}", "claimed": held})
            for _ in range(held):
                voucher_id, code = new_id("vch"), new_voucher_code()
                codes.append(code)
                vouchers.append(
                    {
                        "id": voucher_id,
                        "code": code,
                        "campaign_id": campaign_id,
                        "batch_id": batch_id,
                        "round_id": round_id,
                        "resident_id": resident_id,
                        "person_id": person_id,
                        "status": VoucherStatus.CLAIMED.value,
                        "value_fen": value_fen,
                        "claimed_at": now,
                        "valid_until": now + timedelta(days=7),
                        "district": District.YANJIANG.value,
                        "idempotency_key": f"bench-claim-{voucher_id}",
                    }
                )
                events.append(
                    {"voucher_id": voucher_id, "kind": "claimed", "value_fen": value_fen, "at": now}
                )
        for table, rows in (
            (PersonRow, persons),
            (PersonIdentifierRow, identifiers),
            (ResidentRow, resident_rows),
            (VoucherRow, vouchers),
            (VoucherEventRow, events),
            (ClaimCounterRow, counters),
        ):
            for start in range(0, len(rows), 1_000):
                await connection.execute(insert(table), rows[start : start + 1_000])
        # The round's stock gives up what was claimed, shard by shard, as claims would have taken it.
        left = count
        shards = (
            await connection.execute(
                select(StockShardRow.shard, StockShardRow.remaining).where(StockShardRow.round_id == round_id)
            )
        ).all()
        for shard, remaining in shards:
            taken = min(left, remaining)
            if taken:
                await connection.execute(
                    update(StockShardRow)
                    .where(StockShardRow.round_id == round_id, StockShardRow.shard == shard)
                    .values(remaining=StockShardRow.remaining - taken)
                )
            left -= taken
        if left:
            sys.exit(f"the round's stock is {left} short of {count} vouchers")
        await connection.commit()
    return codes


# --- the load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    number: int
    voucher_code: str
    till: Till
    order_amount_fen: int
    merchant_discount_fen: int
    retry: bool  # sent again with the same key and body once answered


def plan_attempts(
    codes: list[str], tills: list[Till], *, attempts: int, duplicates: float, retries: float
) -> list[Attempt]:
    rng = random.Random(SEED)
    fresh = iter(rng.sample(codes, len(codes)))
    used: list[str] = []
    plan = []
    for number in range(attempts):
        if used and rng.random() < duplicates:
            code = rng.choice(used)  # a voucher an earlier attempt spends: voucher_used, unless refused
        else:
            code = next(fresh)
            used.append(code)
        # around the 100-yuan threshold: about one order in seven is below it
        order = rng.randrange(9_000, 16_000, 100)
        discount = rng.choice((0, 0, 0, 500))  # the merchant's own promotion, stacked with the voucher
        plan.append(Attempt(number, code, rng.choice(tills), order, discount, retry=rng.random() < retries))
    return plan


async def fire(
    *,
    base_url: str,
    partner: Partner,
    plan: list[Attempt],
    concurrency: int,
    start_at: float,
    deadline: float,
) -> LoadResult:
    path = "/api/v1/redemptions"
    run_tag = secrets.token_hex(4)

    async def attempt(http: Connection, item: Attempt, result: LoadResult) -> None:
        body = encode(
            {
                "voucher_code": item.voucher_code,
                "merchant_id": item.till.merchant_id,
                "terminal_id": item.till.terminal_id,
                "order_amount_fen": item.order_amount_fen,
                "merchant_discount_fen": item.merchant_discount_fen,
                "category": item.till.category,
                "order_ref": f"o-{run_tag}-{item.number}",
            }
        )
        key = f"redeem-{run_tag}-{item.number}"
        first = await result.post(
            http, path, body, partner.headers(path, body, **{"Idempotency-Key": key}), created="redeemed"
        )
        if first is not None and first.status_code == 201:
            result.notes.setdefault("created", []).append(first.json()["redemption_id"])
        if not item.retry or first is None or first.status_code >= 500:
            return
        again = await result.post(
            http, path, body, partner.headers(path, body, **{"Idempotency-Key": key}), created="redeemed"
        )
        replayed = again is not None and (again.status_code, again.json()) == (
            first.status_code,
            first.json(),
        )
        result.notes["retries"] = result.notes.get("retries", 0) + 1
        if not replayed:
            result.notes.setdefault("retry_mismatches", []).append(
                {"first": [first.status_code, first.text[:200]], "again": again and again.text[:200]}
            )

    return await drive(
        base_url=base_url,
        concurrency=concurrency,
        start_at=start_at,
        deadline=deadline,
        attempts=plan,
        attempt=attempt,
    )


# --- the no-double-spend check --------------------------------------------------------------------


async def check_redemptions(url: str, created: list[str]) -> dict[str, int]:
    holding = sorted(status.value for status in HOLDS_VOUCHER)
    async with database(url) as connection:
        double = await connection.scalar(
            text(
                "SELECT count(*) FROM (SELECT voucher_id FROM redemptions WHERE status IN :holding"
                " GROUP BY voucher_id HAVING count(*) > 1) AS doubly_held"
            ).bindparams(bindparam("holding", expanding=True)),
            {"holding": holding},
        )
        acknowledged = sorted(set(created))
        found = 0
        for start in range(0, len(acknowledged), 1_000):
            found += (
                await connection.scalar(
                    text("SELECT count(*) FROM redemptions WHERE id IN :ids").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    {"ids": acknowledged[start : start + 1_000]},
                )
                or 0
            )
        redeemed = await connection.scalar(text("SELECT count(*) FROM vouchers WHERE status = 'redeemed'"))
        confirmed = await connection.scalar(
            text("SELECT count(*) FROM redemptions WHERE status = 'confirmed'")
        )
        rows = await connection.scalar(text("SELECT count(*) FROM redemptions"))
    return {
        "vouchers_held_twice": int(double or 0),
        "acknowledged": len(acknowledged),
        "acknowledged_with_row": found,
        "redemption_rows": int(rows or 0),
        "vouchers_redeemed": int(redeemed or 0),
        "redemptions_confirmed": int(confirmed or 0),
    }


# --- figures --------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    run = report["run"]
    print(
        f"redemptions over HTTP: {run['backend']}{' + Redis' if run['redis'] else ''}, "
        f"{run['workers']} worker(s), concurrency {run['concurrency']}"
    )
    row("merchants / vouchers", f"{run['merchants']:,} / {run['vouchers']:,}")
    row("setup (not timed)", f"{report['setup_s']:.1f} s")
    print_load(report, success_label="redemptions")
    print_cpu(report)
    committed = report["passes"]["committed"]
    row(
        "passes (one transaction each)",
        f"{committed['passes']:,}, {committed['mean_size']} redemptions each on average; "
        f"one at a time {report['passes']['one_at_a_time']['passes']}, failed {report['passes']['failed']['passes']}",
    )
    check = report["check"]
    row("retries answered alike", f"{check['retries'] - check['retry_mismatches']:,} of {check['retries']:,}")
    row("vouchers held twice", f"{check['vouchers_held_twice']:,}")
    row(
        "201s with their row",
        f"{check['acknowledged_with_row']:,} of {check['acknowledged']:,} "
        f"({check['redemption_rows']:,} redemption rows)",
    )
    row(
        "vouchers redeemed / confirmed",
        f"{check['vouchers_redeemed']:,} / {check['redemptions_confirmed']:,}",
    )
    print(f"double spend: {check['vouchers_held_twice']}")
    if not check["ok"]:
        print(f"CHECK FAILED: {check['problems']}")
    print_errors(report)


# --- the run --------------------------------------------------------------------------------------


def run(options: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="huimin-bench-"))
    try:
        with fresh_database(options.backend, scratch) as url:
            env = {**os.environ, "HUIMIN_DATABASE_URL": url, "HUIMIN_ENV": "development", **UNLIMITED}
            env.pop("HUIMIN_REDIS_URL", None)
            env["HUIMIN_CLAIMS_BACKEND"] = "sql"
            if options.redis:
                env["HUIMIN_REDIS_URL"] = os.environ.get("HUIMIN_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
            began = time.perf_counter()
            say(f"migrating a fresh {options.backend} database")
            huimin(env, "db", "upgrade")
            opens = datetime.now(LOCAL_TZ).replace(microsecond=0) - timedelta(minutes=1)
            campaign = scratch / "campaign.toml"
            code = f"bench-{secrets.token_hex(4)}"
            campaign.write_text(
                campaign_toml(code=code, stock=options.vouchers, opens=opens), encoding="utf-8"
            )
            huimin(env, "campaign", "load", str(campaign))
            app = create_partner(env, "压测 app", "app")
            terminal = create_partner(env, "压测收银台", "terminal")
            settings = Settings(database_url=url)
            campaign_id = asyncio.run(_campaign_id(url, code))
            say(f"making {options.merchants} active merchants through the merchants service")
            tills = asyncio.run(active_merchants(url, settings, campaign_id, options.merchants))
            say(f"writing {options.vouchers:,} claimed vouchers in bulk (bypassing the claim API)")
            codes = asyncio.run(
                claimed_vouchers(url, settings, app_key_id=app.key_id, count=options.vouchers)
            )
            if options.backend == "postgres":
                # The statistics autovacuum would have gathered while residents claimed these over days:
                # written in one go, their tables would still look empty to the planner. (Only these:
                # the tables the run fills start empty, as they would on a campaign's first day.)
                asyncio.run(
                    analyze(
                        url,
                        [
                            "persons",
                            "person_identifiers",
                            "residents",
                            "vouchers",
                            "voucher_events",
                            "claim_counters",
                        ],
                    )
                )
            setup_s = time.perf_counter() - began
            plan = plan_attempts(
                codes,
                tills,
                attempts=options.attempts,
                duplicates=options.duplicates,
                retries=options.retries,
            )
            return _with_server(options, env, url, terminal, plan, scratch, setup_s, say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _campaign_id(url: str, code: str) -> str:
    async with database(url) as connection:
        return str(await connection.scalar(select(CampaignRow.id).where(CampaignRow.code == code)))


def _with_server(
    options: argparse.Namespace,
    env: dict[str, str],
    url: str,
    terminal: Partner,
    plan: list[Attempt],
    scratch: Path,
    setup_s: float,
    say: Any,
) -> dict[str, Any]:
    log = scratch / "server.stderr"
    with server(env, options.workers, log, command=profiled(options.profile)) as (base_url, process):
        say(f"firing {len(plan):,} redemptions, concurrency {options.concurrency}, on {base_url}")
        start_at = time.time() + 1.0
        with measuring(
            server_pid=process.pid,
            database=make_url(url).database if options.backend == "postgres" else None,
        ) as measurement:
            result = asyncio.run(
                fire(
                    base_url=base_url,
                    partner=terminal,
                    plan=plan,
                    concurrency=options.concurrency,
                    start_at=start_at,
                    deadline=start_at + options.duration_limit,
                )
            )
        passes = till_passes(base_url)
        server_stderr = log.read_text(errors="replace")
    check = asyncio.run(check_redemptions(url, result.notes.get("created", [])))
    return _report(
        options,
        passes=passes,
        result=result,
        start_at=start_at,
        setup_s=setup_s,
        measurement=measurement,
        check=check,
        server_stderr=server_stderr,
    )


def till_passes(base_url: str) -> dict[str, float]:
    """How the server grouped the redemptions: passes by outcome and their mean size (from /metrics,
    summed over the workers)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    figures: dict[str, float] = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            prefix = f"huimin_till_pass_size_{part}{{"
            if line.startswith(prefix):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                figures[f"{outcome}_{part}"] = figures.get(f"{outcome}_{part}", 0.0) + float(
                    line.rsplit(" ", 1)[1]
                )
    return figures


def _report(
    options: argparse.Namespace,
    *,
    passes: dict[str, float],
    result: LoadResult,
    start_at: float,
    setup_s: float,
    measurement: Measurement,
    check: dict[str, int],
    server_stderr: str,
) -> dict[str, Any]:
    load = throughput([result], start_at)
    mismatches = result.notes.get("retry_mismatches", [])
    problems = []
    if check["vouchers_held_twice"]:
        problems.append(f"{check['vouchers_held_twice']} vouchers held by two redemptions")
    if check["acknowledged_with_row"] != check["acknowledged"]:
        problems.append(
            f"{check['acknowledged'] - check['acknowledged_with_row']} answered 201 without a redemption row"
        )
    if check["vouchers_redeemed"] != check["redemptions_confirmed"]:
        problems.append(
            f"{check['vouchers_redeemed']} vouchers redeemed, {check['redemptions_confirmed']} redemptions confirmed"
        )
    if mismatches:
        problems.append(f"{len(mismatches)} retries got another answer: {mismatches[:3]}")
    return {
        "run": {
            "backend": options.backend,
            "redis": options.redis,
            "workers": options.workers,
            "merchants": options.merchants,
            "vouchers": options.vouchers,
            "attempts": options.attempts,
            "concurrency": options.concurrency,
            "duplicates": options.duplicates,
            "retries": options.retries,
            "duration_limit_s": options.duration_limit,
            "started_at": datetime.fromtimestamp(start_at, UTC).isoformat(timespec="seconds"),
            "commit": commit(),
            "load_average_before": measurement.load_average_before,
        },
        "setup_s": round(setup_s, 1),
        **load,
        "cpu": cpu_figures(measurement, client_s=result.cpu_seconds, wall=load["wall_s"], processes=1),
        "check": {
            **check,
            "retries": result.notes.get("retries", 0),
            "retry_mismatches": len(mismatches),
            "ok": not problems,
            "problems": problems,
        },
        "passes": {
            outcome: {
                "passes": int(passes.get(f"{outcome}_count", 0)),
                "mean_size": round(passes.get(f"{outcome}_sum", 0) / passes[f"{outcome}_count"], 1)
                if passes.get(f"{outcome}_count")
                else 0.0,
            }
            for outcome in ("committed", "one_at_a_time", "failed")
        },
        "server_errors": result.server_errors,
        "transport_errors": result.transport_errors,
        "server_log": keep_server_log([result], server_stderr, "bench_redemptions"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--redis", action="store_true", help="give the server HUIMIN_REDIS_URL (PostgreSQL)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (sqlite: 1)")
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--vouchers", type=int, default=None, help="claimed vouchers (default: attempts)")
    parser.add_argument("--attempts", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight")
    parser.add_argument("--duplicates", type=float, default=0.02, help="share spending a used voucher")
    parser.add_argument("--retries", type=float, default=0.03, help="share repeated with the same key")
    parser.add_argument("--duration-limit", type=float, default=120, help="seconds; stop sending after this")
    parser.add_argument(
        "--profile", metavar="FILE", help="serve one worker under cProfile (CPU time), stats to FILE"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    if options.profile and options.workers != 1:
        parser.error("--profile runs one worker")
    options.vouchers = options.vouchers or options.attempts
    if options.backend == "sqlite" and (options.workers != 1 or options.redis):
        parser.error("the embedded SQLite database serves one worker, without Redis")
    if min(options.merchants, options.attempts, options.concurrency) < 1:
        parser.error("give at least one merchant, attempt and request in flight")
    if options.vouchers < options.attempts:
        parser.error(
            "every attempt that is not a duplicate needs a voucher of its own: --vouchers ≥ --attempts"
        )

    report = run(options)
    if options.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_table(report)
    if not report["check"]["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
