"""The report against the demo: a small simulated campaign (which runs the rollup itself), whose figures
must equal the demo's own summary.json (computed from the raw rows) and the ledger's balances; then the
summary document and the XLSX exports of the same database."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from huimin.auth.principals import Principal
from huimin.campaigns.models import CampaignRow
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.kit.clock import ManualClock
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.reports import exports, service, summary
from huimin.reports.domain import Dimension
from huimin.simulation.run import DATABASE_FILE
from tests.integration.conftest import SmallDemo

CITY_CLERK = Principal.system("test")


async def test_the_report_agrees_with_the_demo_and_its_ledger(small_demo: SmallDemo) -> None:
    """Read-only on the shared small demo's database (the session's `small_demo` fixture)."""
    expected = small_demo.summary
    engine = create_engine(f"sqlite+aiosqlite:///{small_demo.out / DATABASE_FILE}")
    sessions = create_sessionmaker(engine)
    try:
        async with unit_of_work(sessions) as session:
            campaign = await session.scalar(select(CampaignRow))
            assert campaign is not None
            clock = ManualClock(campaign.loaded_at)

            async def figures(by: Dimension | None = None) -> service.Report:
                return await service.figures(
                    session,
                    principal=CITY_CLERK,
                    campaign_id=campaign.id,
                    query=service.Query(by=by),
                    clock=clock,
                )

            whole = await figures()
            balances = await ledger.balances(session, campaign_id=campaign.id)
            by_batch = (await figures(Dimension.BATCH)).lines
            by_category = (await figures(Dimension.CATEGORY)).lines
            by_district = (await figures(Dimension.DISTRICT)).lines
            _, _, codes = await service.ReportRepository(session).names(campaign.id)
            stem, html, pdf = await summary.render(session, campaign_id=campaign.id, clock=clock)
            workbooks = {
                kind: await exports.export(
                    session, principal=CITY_CLERK, campaign_id=campaign.id, kind=kind, clock=clock
                )
                for kind in exports.ExportKind
            }
    finally:
        await engine.dispose()

    found = whole.figures
    assert whole.events_behind == 0  # the demo ran the rollup
    assert found.claimed == expected["vouchers_claimed"]
    assert found.claimed_value_fen == expected["vouchers_claimed_value_fen"]
    assert found.redeemed == expected["vouchers_redeemed"]
    assert str(found.redemption_rate) == expected["redemption_rate"]
    assert found.expired == expected["vouchers_expired"]
    assert found.consumption_fen == expected["consumption_driven_fen"]
    assert found.subsidy_fen == expected["subsidy_fen"]
    assert found.subsidy_confirmed_fen == expected["subsidy_confirmed_fen"]
    assert found.subsidy_pending_fen == expected["subsidy_pending_fen"]
    assert found.merchant_discounts_fen == expected["merchant_discounts_fen"]
    assert str(found.leverage) == expected["leverage"]
    refunds = expected["refunds"]
    assert (found.refunds, found.refund_fen, found.refund_subsidy_fen) == (
        refunds["count"],
        refunds["amount_fen"],
        refunds["subsidy_returned_fen"],
    )
    assert (found.invoices_verified, found.invoices_rejected) == (
        expected["invoices"]["verified"],
        expected["invoices"]["rejected"],
    )
    assert {codes[line.key]: line.figures.claimed for line in by_batch} == {
        code: count for code, count in expected["vouchers_by_batch"].items() if count
    }
    assert {codes[line.key]: line.figures.redeemed for line in by_batch if line.figures.redeemed} == {
        code: count for code, count in expected["vouchers_redeemed_by_batch"].items() if count
    }
    assert {
        line.key: {
            "redeemed": line.figures.redeemed,
            "consumption_fen": line.figures.consumption_fen,
            "subsidy_fen": line.figures.subsidy_fen,
        }
        for line in by_category
    } == expected["redemptions_by_category"]
    assert {line.key: line.figures.claimed for line in by_district} == {
        district: count for district, count in expected["claimed_by_district"].items() if count
    }

    # to the fen with the ledger
    def total(kind: ledger_domain.AccountKind) -> int:
        return sum(int(value) for key, value in balances.items() if ledger_domain.account_kind(key) is kind)

    kinds = ledger_domain.AccountKind
    assert found.subsidy_fen == sum(
        total(kind) for kind in (kinds.PENDING, kinds.PAYABLE, kinds.CLEARING, kinds.SETTLED)
    )
    assert found.held_fen == total(kinds.VOUCHERS)
    money = whole.money
    assert money is not None
    assert (money.deposited, money.unclaimed, money.vouchers, money.expired, money.payable) == (
        total(kinds.FUNDER),
        total(kinds.BUDGET),
        total(kinds.VOUCHERS),
        total(kinds.EXPIRED),
        total(kinds.PAYABLE),
    )

    # the summary: a self-contained HTML document and a PDF
    assert stem.endswith("活动总结")
    assert "<svg" in html
    assert "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "核销率" in html
    assert "拉动比" in html
    assert pdf.startswith(b"%PDF")
    assert len(pdf) > 10_000

    # the exports: Chinese headers, yuan formats, no clear personal data
    claims = load_workbook(io.BytesIO(workbooks[exports.ExportKind.CLAIMS].content)).worksheets[0]
    assert [cell.value for cell in claims[3]][:2] == ["券码（脱敏）", "券批次"]
    assert workbooks[exports.ExportKind.CLAIMS].rows == found.claimed
    phones = [row[5].value for row in claims.iter_rows(min_row=4)]
    assert phones
    assert all("****" in str(phone) for phone in phones)
    redemptions = load_workbook(io.BytesIO(workbooks[exports.ExportKind.REDEMPTIONS].content)).worksheets[0]
    assert redemptions.cell(row=4, column=9).number_format == exports.YUAN
    statement = load_workbook(io.BytesIO(workbooks[exports.ExportKind.STATEMENT].content)).worksheets[0]
    assert statement.cell(row=3, column=1).value == "资金来源"
