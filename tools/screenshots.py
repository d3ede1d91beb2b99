"""Screenshots of the console and the H5 pages for docs/screenshots/ (issues 8 and 10), re-runnable:

    .venv/bin/python tools/screenshots.py [--residents 300] [--merchants 40] [--db PATH] [--out DIR]

1. Runs the simulated campaign (`huimin demo`) into a temporary folder, or copies the demo database
   given with --db (the original is never changed).
2. Adds, through the services and with the roles the platform gives each step: console accounts
   (city, county, operator, finance), a few merchants awaiting their county's review, settlement runs
   prepared by the operator, approved by finance and answered by the bank (one payout returned, the
   last run still awaiting approval), the audit trail sealed and the report rollups brought up to date.
3. Writes the end-of-campaign summary (活动总结) as PDF and renders its first pages to PNG with
   `pdftoppm` (poppler-utils).
4. Serves that database on 127.0.0.1 (uvicorn in a thread, with a manual clock) and drives Debian's
   Chromium (/usr/bin/chromium, or HUIMIN_TEST_CHROMIUM) with Playwright: the overview, the review queue
   and the resident page at desktop (1440 px) and phone (390 px) widths, the reports, settlement and
   audit pages at desktop width.

Needs `apt-get install chromium fonts-noto-cjk poppler-utils` (the fonts draw the Chinese text).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyotp
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.audit import service as audit
from huimin.auth.accounts import NewUser, create_user, totp_sealer
from huimin.auth.principals import Principal, Role
from huimin.campaigns.service import get_campaign_by_code
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.kit.clock import ManualClock, local_datetime
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants import service as merchants
from huimin.merchants.domain import Application, Invitation, credit_code_check_character
from huimin.reports import rollup, summary
from huimin.settlement import service as settlement

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("HUIMIN_TEST_CHROMIUM", "/usr/bin/chromium"))
CAMPAIGN = "ziyang-2022"
PASSWORD = "screenshots only 2022"  # noqa: S105 (throw-away accounts in a temporary copy)
# The console is shown the day after the campaign: everything settled but the last run.
AFTER = local_datetime(date(2023, 1, 3), datetime.min.time().replace(hour=10))
# The resident page is shown before a Friday release, with its countdown.
BEFORE_RELEASE = local_datetime(date(2022, 12, 30), datetime.min.time().replace(hour=9, minute=41))
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
MAX_HEIGHT = 2600  # CSS pixels
# Business days settled by the runs (each the day before the run is prepared, T+1).
RUN_DAYS = (date(2022, 7, 10), date(2022, 8, 14), date(2022, 9, 18), date(2022, 11, 6), date(2022, 12, 30))
REVIEW_QUEUE = (  # merchants of 雁江区 awaiting the county's review
    ("资阳市雁江区蜀味坊餐饮店", Category.CATERING, MerchantClass.BELOW_QUOTA_SAMPLED),
    ("资阳市雁江区惠家生活超市", Category.RETAIL, MerchantClass.ABOVE_QUOTA),
    ("资阳市雁江区安居电器经营部", Category.APPLIANCES, MerchantClass.ABOVE_QUOTA),
    ("资阳市雁江区晨光宾馆", Category.LODGING, MerchantClass.ABOVE_SCALE_SERVICES),
)
T = TypeVar("T")


@dataclass(frozen=True)
class Staff:
    city: NewUser
    county: NewUser
    operator: NewUser
    finance: NewUser
    run_id: str  # a closed run with a returned payout


def principal(user: NewUser) -> Principal:
    row = user.user
    return Principal(
        actor_id=row.id,
        role=Role(row.role),
        jurisdiction=Jurisdiction(row.jurisdiction) if row.jurisdiction else None,
        name=row.display_name,
    )


def run_async(settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def demo_database(args: argparse.Namespace, work: Path) -> Path:
    target = work / "huimin.db"
    if args.db:
        copy_database(args.db, target)
        return target
    out = work / "demo"
    command = [
        str(ROOT / ".venv" / "bin" / "huimin"),
        "demo",
        "--residents",
        str(args.residents),
        "--merchants",
        str(args.merchants),
        "--out",
        str(out),
    ]
    print("running", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # noqa: S603 (our own command)
    copy_database(out / "huimin-demo.db", target)
    return target


def copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy, with whatever is still in the source's WAL."""
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)


async def seed(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Staff:
    """Accounts, a review queue, settlement runs and the bank's answers, all through the services, on a
    clock of their own from July 2022 (a clock never goes backwards)."""
    clock = ManualClock(local_datetime(date(2022, 7, 1), datetime.min.time().replace(hour=9)))
    sealer = totp_sealer(settings.secret_key.get_secret_value())
    people = {}
    async with unit_of_work(sessions) as session:
        for username, name, role, jurisdiction in (
            ("shots.city", "市商务局 王芳", Role.CITY_ADMIN, None),
            ("shots.yanjiang", "雁江区商务局 张伟", Role.COUNTY_REVIEWER, Jurisdiction.YANJIANG),
            ("shots.operator", "银联资阳分公司 李强", Role.OPERATOR, None),
            ("shots.finance", "市财政局 刘洋", Role.FINANCE, None),
        ):
            people[username] = await create_user(
                session,
                username=username,
                display_name=name,
                role=role,
                password=PASSWORD,
                sealer=sealer,
                clock=clock,
                jurisdiction=jurisdiction,
            )
    city, county = people["shots.city"], people["shots.yanjiang"]
    operator, finance = people["shots.operator"], people["shots.finance"]
    merchant_sealer = merchants.MerchantSealer.from_settings(settings)
    async with unit_of_work(sessions) as session:
        campaign = await get_campaign_by_code(session, code=CAMPAIGN)
    for serial, (name, category, merchant_class) in enumerate(REVIEW_QUEUE, start=990_001):
        body = f"92512002{serial:09d}"
        async with unit_of_work(sessions) as session:
            row = await merchants.invite(
                session,
                principal=principal(city),
                campaign_id=campaign.id,
                invitation=Invitation(
                    credit_code=body + credit_code_check_character(body),
                    legal_name=name,
                    jurisdiction=Jurisdiction.YANJIANG,
                    category=category,
                    merchant_class=merchant_class,
                    registered_address=f"资阳市雁江区娇子大道{serial % 1000}号",
                ),
                sealer=merchant_sealer,
                clock=clock,
            )
            await merchants.apply(
                session,
                principal=principal(operator),
                merchant_id=row.id,
                application=Application(
                    registered_address=f"资阳市雁江区娇子大道{serial % 1000}号",
                    business_hours="09:00-21:00",
                    terminals=(f"Q{serial:07d}",),
                    bank_name="四川资阳农村商业银行",
                    bank_account=f"62219{serial:014d}",
                    contact_name="陈静",
                    contact_phone=f"139{serial:08d}",
                ),
                sealer=merchant_sealer,
                clock=clock,
            )
            await merchants.submit(session, principal=principal(operator), merchant_id=row.id, clock=clock)
    bank = merchant_sealer.bank_account
    shown_run = ""
    for number, day in enumerate(RUN_DAYS):
        clock.set(local_datetime(day + timedelta(days=1), datetime.min.time().replace(hour=9)))
        async with unit_of_work(sessions) as session:
            run = await settlement.prepare(
                session, principal=principal(operator), campaign_id=campaign.id, day=day, clock=clock
            )
        if number == len(RUN_DAYS) - 1:
            break  # the last run awaits the finance bureau
        clock.advance(timedelta(hours=2))
        async with unit_of_work(sessions) as session:
            await settlement.approve(
                session, principal=principal(finance), run_id=run.id, clock=clock, sealer=bank
            )
            file = await settlement.clearing_file(
                session, principal=principal(operator), run_id=run.id, sealer=bank, clock=clock
            )
        clock.advance(timedelta(hours=5))
        async with unit_of_work(sessions) as session:
            await settlement.import_bank_file(
                session,
                principal=principal(operator),
                campaign_id=campaign.id,
                content=bank_answer(file.content, fail_one=number == 2),
                clock=clock,
            )
        if number == 2:
            shown_run = run.id
        async with unit_of_work(sessions) as session:
            await audit.seal(session, clock=clock)
    clock.set(AFTER)
    async with unit_of_work(sessions) as session:
        await audit.seal(session, clock=clock)
        await rollup.rollup(session, clock=clock)
    return Staff(city, county, operator, finance, shown_run)


def bank_answer(clearing_file: bytes, *, fail_one: bool) -> bytes:
    """The bank pays every payout of the clearing file; with `fail_one`, the first is returned."""
    rows = [row for row in csv.reader(io.StringIO(clearing_file.decode())) if row and row[0] != "TRAILER"][1:]
    out = ["payout_reference,amount_fen,status,bank_transaction_id,reason"]
    for number, row in enumerate(rows):
        if fail_one and number == 0:
            out.append(f"{row[0]},{row[5]},failed,,账户已冻结")
        else:
            out.append(f"{row[0]},{row[5]},paid,ICBC{number + 1:08d},")
    return ("\n".join(out) + "\n").encode()


def summary_pages(settings: Settings, out: Path, work: Path) -> None:
    clock = ManualClock(AFTER)

    async def render(sessions: async_sessionmaker[AsyncSession]) -> bytes:
        async with unit_of_work(sessions) as session:
            campaign = await get_campaign_by_code(session, code=CAMPAIGN)
            document = await summary.gather(session, campaign_id=campaign.id, clock=clock)
            return summary.render_pdf(document)

    pdf = work / "summary.pdf"
    pdf.write_bytes(run_async(settings, render))
    prefix = work / "summary-page"
    pdftoppm = shutil.which("pdftoppm") or "pdftoppm"
    subprocess.run(  # noqa: S603 (poppler's tool found on PATH, our arguments)
        [pdftoppm, "-png", "-r", "90", "-f", "1", "-l", "3", str(pdf), str(prefix)], check=True
    )
    for page in (1, 2, 3):
        found = sorted(work.glob(f"summary-page-*{page}.png"))
        shutil.copyfile(found[0], out / f"summary-pdf-page-{page}.png")


@contextmanager
def served(settings: Settings, clock: ManualClock) -> Iterator[str]:
    app = create_app(settings, clock=clock)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def context(browser: Browser, viewport: dict[str, int], state: object = None) -> BrowserContext:
    phone = viewport["width"] < 600
    return browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        storage_state=state,  # type: ignore[arg-type]
    )


def signed_in(browser: Browser, base: str, user: NewUser, clock: ManualClock) -> object:
    """Sign in through the form (password and TOTP); the cookies to open other contexts with."""
    with_form = context(browser, DESKTOP)
    page = with_form.new_page()
    page.goto(f"{base}/console/sign-in")
    page.fill("#username", user.user.username)
    page.fill("#password", PASSWORD)
    if user.totp_secret:
        page.fill("#totp", pyotp.TOTP(user.totp_secret).at(clock.now()))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/**")
    state = with_form.storage_state()
    with_form.close()
    return state


def shoot(
    browser: Browser, base: str, path: str, name: str, out: Path, *, state: object, widths: tuple[str, ...]
) -> None:
    for width in widths:
        view = context(browser, DESKTOP if width == "desktop" else PHONE, state)
        page: Page = view.new_page()
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # ECharts draws on the next animation frames
        target = out / f"{name}-{width}.png"
        # The whole page, but at most a few screens of it: long lists are cut.
        height = min(int(page.evaluate("document.documentElement.scrollHeight")), MAX_HEIGHT)
        size = DESKTOP if width == "desktop" else PHONE
        page.screenshot(
            path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": size["width"], "height": height}
        )
        print("wrote", target.relative_to(ROOT) if target.is_relative_to(ROOT) else target, flush=True)
        view.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--merchants", type=int, default=40)
    parser.add_argument("--db", type=Path, help="a demo database to copy instead of running the demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not CHROMIUM.exists() or shutil.which("pdftoppm") is None:
        print("needs /usr/bin/chromium and pdftoppm: apt-get install chromium fonts-noto-cjk poppler-utils")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="huimin-shots-") as folder:
        work = Path(folder)
        database = demo_database(args, work)
        settings = Settings(database_url=f"sqlite+aiosqlite:///{database}")
        staff = run_async(settings, lambda sessions: seed(sessions, settings))
        summary_pages(settings, args.out, work)
        clock = ManualClock(BEFORE_RELEASE)  # the resident page first, then the console after the end
        with served(settings, clock) as base, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            both = ("desktop", "phone")
            shoot(browser, base, "/h5", "h5-resident", args.out, state=None, widths=both)
            clock.set(AFTER)
            city = signed_in(browser, base, staff.city, clock)
            shoot(browser, base, "/console/overview", "overview", args.out, state=city, widths=both)
            shoot(
                browser,
                base,
                "/console/reports?by=week",
                "reports",
                args.out,
                state=city,
                widths=("desktop",),
            )
            shoot(browser, base, "/console/audit", "audit-log", args.out, state=city, widths=("desktop",))
            county = signed_in(browser, base, staff.county, clock)
            shoot(
                browser,
                base,
                "/console/merchants/review",
                "review-queue",
                args.out,
                state=county,
                widths=both,
            )
            finance = signed_in(browser, base, staff.finance, clock)
            shoot(
                browser,
                base,
                "/console/settlement",
                "settlement-runs",
                args.out,
                state=finance,
                widths=("desktop",),
            )
            shoot(
                browser,
                base,
                f"/console/settlement/runs/{staff.run_id}",
                "settlement-run",
                args.out,
                state=finance,
                widths=("desktop",),
            )
            shoot(
                browser,
                base,
                "/console/settlement/recovery",
                "settlement-recovery",
                args.out,
                state=finance,
                widths=("desktop",),
            )
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
