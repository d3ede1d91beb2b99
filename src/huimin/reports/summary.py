"""The end-of-campaign summary (活动总结, seed 五(四), 六(一)): what the commerce bureau hands to the city
government. `huimin report summary --campaign C --out DIR` writes `DIR/<code>-活动总结.html` and `.pdf`.

The document is gathered once (`gather`) into sections of headline figures, tables and charts, then
rendered twice from the same sections: HTML with inline SVG (self-contained: no script, no external
file, fonts of the reader's system) and PDF with reportlab, whose built-in CID font STSong-Light
renders Chinese without embedding or downloading a font. Sections without data (complaints, fraud
cases, settlement) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from html import escape as html_escape
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.campaigns.service import get_campaign
from huimin.kit.clock import Clock, to_local
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.ledger.checks import run_checks
from huimin.reports import charts, outcomes, service
from huimin.reports.charts import Scene
from huimin.reports.domain import Dimension, Figures, Totals
from huimin.reports.repository import ReportRepository
from huimin.settlement import service as settlement

__all__ = ["Document", "gather", "render", "render_html", "render_pdf"]


# Formatting, as officials write it


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def wan(fen: int) -> str:
    """万元, two decimals (half up)."""
    return f"{(Decimal(fen) / Decimal(1_000_000)).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def percent(rate: Decimal | None) -> str:
    return "—" if rate is None else f"{(rate * 100).quantize(Decimal('0.01'), ROUND_HALF_UP)}%"


def leverage(rate: Decimal | None) -> str:
    return "—" if rate is None else f"1:{rate}"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric_from: int = 1  # columns from this index are right-aligned
    total: Sequence[str] | None = None


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    charts: list[Scene] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    side_by_side: bool = False  # two charts next to each other in the HTML


@dataclass
class Document:
    title: str
    subtitle: str
    generated: str
    headline: list[tuple[str, str, str]]  # (label, value, unit)
    sections: list[Section]
    notes: list[str]


_BREAKDOWN_COLUMNS = ("核销笔数", "补贴金额（元）", "拉动消费（元）", "拉动比")


def _breakdown_row(label: str, figures: Figures, *, claims: bool, rate: bool = True) -> list[str]:
    row = [label]
    if claims:
        row += [count(figures.claimed)] + ([percent(figures.redemption_rate)] if rate else [])
    money = [yuan(figures.subsidy_fen), yuan(figures.consumption_fen)]
    return [*row, count(figures.redeemed), *money, leverage(figures.leverage)]


def _breakdown(
    title: str, lines: Sequence[service.Line], whole: Figures, *, claims: bool, rate: bool = True
) -> Table:
    """A table of a breakdown. `rate` off for periods: a week's redemptions spend earlier weeks' claims."""
    columns = [title] + (["领取券数"] if claims else []) + (["核销率"] if claims and rate else [])
    return Table(
        columns=[*columns, *_BREAKDOWN_COLUMNS],
        rows=[_breakdown_row(line.label, line.figures, claims=claims, rate=rate) for line in lines],
        total=_breakdown_row("合计", whole, claims=claims, rate=rate),
    )


async def gather(session: AsyncSession, *, campaign_id: str, clock: Clock) -> Document:
    """Everything the summary shows, read through the report services as the system."""
    principal = Principal.system("report-summary")
    campaign = await get_campaign(session, campaign_id=campaign_id)

    async def by(dimension: Dimension | None) -> service.Report:
        return await service.figures(
            session,
            principal=principal,
            campaign_id=campaign.id,
            query=service.Query(by=dimension),
            clock=clock,
        )

    whole = await by(None)
    figures = whole.figures
    money = whole.money
    assert money is not None  # the system reads the whole city  # noqa: S101
    now = clock.now()
    headline = [
        ("投放消费券", count(figures.released), "张"),
        ("市民领取", count(figures.claimed), "张"),
        ("核销使用", count(figures.redeemed), "笔"),
        ("核销率", percent(figures.redemption_rate), ""),
        ("财政及社会资金补贴", wan(figures.subsidy_fen), "万元"),
        ("拉动消费", wan(figures.consumption_fen), "万元"),
        ("拉动比", leverage(figures.leverage), ""),
        ("参与市民（领券）", count(figures.residents_claiming), "人"),
        ("参与市民（用券）", count(figures.residents_redeeming), "人"),
        ("核销商户", count(figures.merchants_redeeming), "户"),
        ("商户让利", wan(figures.merchant_discounts_fen), "万元"),
        ("回收财政资金", wan(money.recovered), "万元"),
    ]
    sections = [
        _overview(campaign.name, campaign.starts_on, campaign.ends_on, figures, money),
        _trend((await by(Dimension.DAY)).lines, (await by(Dimension.WEEK)).lines, figures),
        _breakdowns(
            batches=(await by(Dimension.BATCH)).lines,
            categories=(await by(Dimension.CATEGORY)).lines,
            jurisdictions=(await by(Dimension.JURISDICTION)).lines,
            districts=(await by(Dimension.DISTRICT)).lines,
            classes=(await by(Dimension.MERCHANT_CLASS)).lines,
            whole=figures,
        ),
        await _merchants(session, principal, campaign.id),
    ]
    found = await outcomes.read_outcomes(session, campaign_id=campaign.id, jurisdiction=None)
    if found.complaints:
        sections.append(_complaints(found))
    if found.alerts or found.cases or found.sanctions:
        sections.append(_risk(found, figures))
    sections.append(await _funds(session, principal, campaign.id, money, figures))
    return Document(
        title=f"{campaign.name}活动总结",
        subtitle=f"活动期间：{campaign.starts_on:%Y年%m月%d日} 至 {campaign.ends_on:%Y年%m月%d日}",
        generated=f"资阳市消费券发放平台 {to_local(now):%Y年%m月%d日 %H:%M} 生成（北京时间）",
        headline=headline,
        sections=sections,
        notes=[
            "核销率 = 核销使用笔数 ÷ 市民领取券数；核销使用不含发票核验未通过、全额退款及被追回的交易。",
            "补贴金额为消费券实际抵扣金额，已扣除退款退回的补贴；拉动消费为使用消费券交易的实付金额"
            "（商户优惠后、含消费券抵扣），已扣除退款；拉动比 = 拉动消费 ÷ 补贴金额。",
            "金额单位除注明外为元；数据来自平台核销与总账（复式记账）记录，按北京时间自然日统计。",
            "参与市民按身份证号去重，同一自然人多个账户计为一人。",
        ],
    )


def _overview(name: str, starts: date, ends: date, figures: Figures, money: service.Money) -> Section:
    days = (ends - starts).days + 1
    text = (
        f"{name}自{starts:%Y年%m月%d日}启动，至{ends:%Y年%m月%d日}结束，历时{days}天。"
        f"活动累计投放消费券{count(figures.released)}张，市民领取{count(figures.claimed)}张，"
        f"核销使用{count(figures.redeemed)}笔，核销率{percent(figures.redemption_rate)}；"
        f"消费券补贴{wan(figures.subsidy_fen)}万元，拉动消费{wan(figures.consumption_fen)}万元，"
        f"拉动比{leverage(figures.leverage)}。"
        f"{count(figures.residents_claiming)}名市民领取消费券，{count(figures.residents_redeeming)}名市民用券消费，"
        f"{count(figures.merchants_redeeming)}户商户发生核销，商户自主让利{wan(figures.merchant_discounts_fen)}万元。"
    )
    funds = (
        f"各资金来源累计拨付{wan(money.deposited)}万元，已结算支付商户{wan(money.settled)}万元，"
        f"待结算{wan(money.payable + money.clearing + money.pending)}万元，"
        f"活动结束回收财政{wan(money.recovered)}万元。"
    )
    return Section("一、活动总体情况", paragraphs=[text, funds])


def _labels(lines: Sequence[service.Line], short: bool = False) -> list[str]:
    return [line.label[5:] if short else line.label for line in lines]


def _trend(days: Sequence[service.Line], weeks: Sequence[service.Line], whole: Figures) -> Section:
    section = Section("二、活动进展趋势")
    if days:
        section.charts.append(
            charts.line_chart(
                _labels(days, short=True),
                [
                    ("领取", [float(line.figures.claimed or 0) for line in days]),
                    ("核销", [float(line.figures.redeemed) for line in days]),
                ],
                title="每日领取与核销（张／笔）",
                fmt=lambda value: f"{value:,.0f}",
            )
        )
    if weeks:
        section.charts.append(
            charts.bar_chart(
                [line.key[5:] for line in weeks],
                [line.figures.consumption_fen / 1_000_000 for line in weeks],
                title="每周拉动消费（万元）",
                fmt=lambda value: f"{value:,.0f}",
                color=charts.PALETTE[1],
            )
        )
        section.tables.append(("按周统计", _breakdown("周（起始日）", weeks, whole, claims=True, rate=False)))
    return section


def _breakdowns(
    *,
    batches: Sequence[service.Line],
    categories: Sequence[service.Line],
    jurisdictions: Sequence[service.Line],
    districts: Sequence[service.Line],
    classes: Sequence[service.Line],
    whole: Figures,
) -> Section:
    section = Section("三、分类统计", side_by_side=True)
    section.charts.append(
        charts.district_map(
            {line.label: line.figures.consumption_fen / 1_000_000 for line in districts},
            title="各区县拉动消费（万元）",
            fmt=lambda value: f"{value:,.2f}万元",
        )
    )
    section.charts.append(
        charts.hbar_chart(
            _labels(categories),
            [line.figures.consumption_fen / 1_000_000 for line in categories],
            title="各行业拉动消费（万元）",
            fmt=lambda value: f"{value:,.2f}",
            width=420,
        )
    )
    section.tables += [
        ("按券批次", _breakdown("券批次", batches, whole, claims=True)),
        ("按行业", _breakdown("行业", categories, whole, claims=False)),
        ("按区县（商户所在地）", _breakdown("区县", jurisdictions, whole, claims=False)),
        (
            "按区县（领取地与商户所在地，高新区、临空经济区计入雁江区）",
            _breakdown("区县", districts, whole, claims=True),
        ),
        ("按商户类别", _breakdown("商户类别", classes, whole, claims=False)),
    ]
    return section


async def _merchants(session: AsyncSession, principal: Principal, campaign_id: str) -> Section:
    section = Section("四、商户参与情况")
    repository = ReportRepository(session)
    by_status = await repository.merchants_by_status(campaign_id, None)
    active: dict[str, int] = {}
    total = 0
    for status, jurisdiction, _, _, number in by_status:
        total += number
        if status in ("active", "suspended", "expelled"):
            active[jurisdiction] = active.get(jurisdiction, 0) + number
    lines = await service.merchant_lines(session, principal=principal, campaign_id=campaign_id)
    selling: dict[str, int] = {}
    for line in lines:
        selling[line.jurisdiction] = selling.get(line.jurisdiction, 0) + 1
    rows = [
        [member.label, count(active.get(member.value, 0)), count(selling.get(member.value, 0))]
        for member in Jurisdiction
    ]
    section.paragraphs.append(
        f"活动共邀约商户{total:,}户，经各县（区）、高新区、临空经济区商务主管部门审核并列入全市参与商户名单的"
        f"{sum(active.values()):,}户，其中{len(lines):,}户发生消费券核销。"
    )
    section.tables.append(
        (
            "各区县参与商户",
            Table(
                columns=["区县", "参与商户（户）", "发生核销（户）"],
                rows=rows,
                total=["合计", count(sum(active.values())), count(len(lines))],
            ),
        )
    )
    top = sorted(
        lines, key=lambda line: -Totals(redemptions=line.measures).figures(claims_known=False).consumption_fen
    )[:20]
    top_rows = []
    for number, line in enumerate(top, start=1):
        found = Totals(redemptions=line.measures).figures(claims_known=False)
        top_rows.append(
            [
                str(number),
                line.name,
                Jurisdiction(line.jurisdiction).label,
                Category(line.category).label,
                MerchantClass(line.merchant_class).label,
                count(found.redeemed),
                yuan(found.subsidy_fen),
                yuan(found.consumption_fen),
            ]
        )
    if top_rows:
        section.tables.append(
            (
                "拉动消费前二十位商户",
                Table(
                    columns=[
                        "序号",
                        "商户名称",
                        "区县",
                        "行业",
                        "商户类别",
                        "核销笔数",
                        "补贴（元）",
                        "拉动消费（元）",
                    ],
                    rows=top_rows,
                    numeric_from=5,
                ),
            )
        )
    return section


def _counts(labels: dict[str, str], found: dict[str, int]) -> list[list[str]]:
    return [[labels.get(key, key), count(value)] for key, value in found.items()]


def _complaints(found: outcomes.Outcomes) -> Section:
    section = Section("五、投诉受理情况")
    done = sum(found.complaints_by_status.get(status, 0) for status in ("resolved", "closed"))
    section.paragraphs.append(
        f"活动期间通过12345热线、市场监管、人民银行等渠道受理投诉{found.complaints:,}件，已办结{done:,}件，"
        f"办结率{percent(Decimal(done) / Decimal(found.complaints)) if found.complaints else '—'}。"
    )
    section.tables.append(
        (
            "投诉类别",
            Table(["类别", "件数"], _counts(outcomes.COMPLAINT_CATEGORIES, found.complaints_by_category)),
        )
    )
    section.tables.append(
        (
            "办理状态",
            Table(["状态", "件数"], _counts(outcomes.COMPLAINT_STATUSES, found.complaints_by_status)),
        )
    )
    return section


def _risk(found: outcomes.Outcomes, figures: Figures) -> Section:
    section = Section("六、风险防控情况")
    expelled = found.sanctions.get("expel", 0)
    section.paragraphs.append(
        f"平台实时监测领券与核销数据，共产生风险预警{found.alerts:,}条，立案核查{found.cases:,}件；"
        f"暂停商户参与{found.sanctions.get('suspend', 0):,}次，取消参与资格{expelled:,}户并列入失信名单，"
        f"追回已结算补贴{yuan(figures.clawed_back_subsidy_fen)}元（{figures.clawed_back:,}笔）。"
    )
    if found.alerts_by_rule:
        section.tables.append(
            ("预警规则", Table(["规则", "预警数"], _counts(outcomes.RISK_RULES, found.alerts_by_rule)))
        )
    if found.cases_by_status:
        section.tables.append(
            ("案件处理", Table(["状态", "件数"], _counts(outcomes.CASE_STATUSES, found.cases_by_status)))
        )
    return section


async def _funds(
    session: AsyncSession, principal: Principal, campaign_id: str, money: service.Money, figures: Figures
) -> Section:
    section = Section("七、资金结算与回收")
    statement = await settlement.statement(session, principal=principal, campaign_id=campaign_id)
    paid = {item.funder: item for item in statement.funders}
    rows = []
    totals = [0] * 6
    for funder in money.funders:
        unused = funder.unclaimed + funder.vouchers + funder.expired
        item = paid.get(funder.code)
        values = [
            funder.deposited,
            funder.deposited - funder.recovered - unused,
            0 if item is None else int(item.subsidy_paid),
            0 if item is None else int(item.outstanding),
            funder.recovered,
            unused,
        ]
        totals = [total + value for total, value in zip(totals, values, strict=True)]
        rows.append([funder.name, *(yuan(value) for value in values)])
    section.paragraphs.append(
        f"补贴资金按日与商户结算，银行确认支付{wan(money.settled)}万元；"
        f"在途（待核验、待结算、待银行确认）{wan(money.pending + money.payable + money.clearing)}万元；"
        f"商户应退回{wan(money.receivable)}万元；未使用资金{wan(money.unclaimed + money.vouchers + money.expired)}万元，"
        f"已回收财政{wan(money.recovered)}万元。补贴金额与总账一致：{yuan(figures.subsidy_fen)}元。"
    )
    section.tables.append(
        (
            "按资金来源（元）",
            Table(
                ["资金来源", "拨付", "支付商户补贴", "其中已结算", "待收回", "回收财政", "未使用"],
                rows,
                total=["合计", *(yuan(value) for value in totals)],
            ),
        )
    )
    checks = await run_checks(session, await get_campaign(session, campaign_id=campaign_id))
    section.paragraphs.append(
        "总账校验（资金守恒、借贷平衡、余额非负等）"
        + (
            "全部通过。"
            if checks.ok
            else f"有{sum(not result.ok for result in checks.results)}项未通过，请核查。"
        )
    )
    return section


# HTML

_CSS = """
@page { size: A4; margin: 18mm 16mm; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif;
  color: #222; margin: 0 auto; max-width: 980px; padding: 24px; line-height: 1.7; }
header { border-bottom: 3px solid #c0392b; margin-bottom: 18px; text-align: center; }
h1 { font-size: 26px; margin: 8px 0 4px; color: #8b1a10; letter-spacing: 2px; }
header p { margin: 2px 0; color: #555; }
h2 { font-size: 19px; color: #8b1a10; border-left: 5px solid #c0392b; padding-left: 10px; margin-top: 30px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { text-indent: 2em; margin: 6px 0; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 12px 0; }
.card { border: 1px solid #e5c9c5; background: #fdf6f5; border-radius: 4px; padding: 8px 10px; }
.card .label { font-size: 12px; color: #666; }
.card .value { font-size: 20px; font-weight: bold; color: #8b1a10; }
.card .unit { font-size: 12px; color: #666; margin-left: 2px; }
.charts { display: grid; gap: 12px; margin: 10px 0; }
.charts.two { grid-template-columns: 1fr 1fr; }
figure { margin: 0; border: 1px solid #eee; padding: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; margin: 4px 0 10px; }
th, td { border: 1px solid #bbb; padding: 4px 6px; }
th { background: #f3e3e1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: bold; background: #faf3f2; }
.notes { font-size: 12px; color: #555; border-top: 1px solid #ccc; margin-top: 26px; }
.notes p { text-indent: 0; }
@media print { body { padding: 0; } h2 { break-after: avoid; } table, figure { break-inside: avoid; } }
"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in table.columns)

    def cells(row: Sequence[str]) -> str:
        return "".join(
            f'<td class="num">{escape(value)}</td>'
            if index >= table.numeric_from
            else f"<td>{escape(value)}</td>"
            for index, value in enumerate(row)
        )

    body = "".join(f"<tr>{cells(row)}</tr>" for row in table.rows)
    if table.total is not None:
        body += f'<tr class="total">{cells(table.total)}</tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(document: Document) -> str:
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{escape(document.title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{escape(document.title)}</h1><p>{escape(document.subtitle)}</p>",
        f"<p>{escape(document.generated)}</p></header>",
        '<section><div class="cards">',
    ]
    for label, value, unit in document.headline:
        parts.append(
            f'<div class="card"><div class="label">{escape(label)}</div><span class="value">{escape(value)}</span>'
            f'<span class="unit">{escape(unit)}</span></div>'
        )
    parts.append("</div></section>")
    for section in document.sections:
        parts.append(f"<section><h2>{escape(section.title)}</h2>")
        parts += [f"<p>{escape(text)}</p>" for text in section.paragraphs]
        if section.charts:
            layout = "charts two" if section.side_by_side else "charts"
            parts.append(f'<div class="{layout}">')
            parts += [f"<figure>{charts.to_svg(scene)}</figure>" for scene in section.charts]
            parts.append("</div>")
        for caption, table in section.tables:
            parts.append(f"<h3>{escape(caption)}</h3>{_html_table(table)}")
        parts.append("</section>")
    parts.append('<section class="notes"><h3>说明</h3>')
    parts += [f"<p>{escape(note)}</p>" for note in document.notes]
    parts.append("</section></body></html>")
    return "".join(parts)


# PDF


def render_pdf(document: Document) -> bytes:
    import io

    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import (
        BaseDocTemplate,
        CondPageBreak,
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )
    from reportlab.platypus import Table as PdfTable

    pdfmetrics.registerFont(UnicodeCIDFont(charts.PDF_FONT))

    def escape(text: str) -> str:
        return html_escape(text.replace("·", "・"))

    font = charts.PDF_FONT
    red = colors.HexColor("#8b1a10")
    title = ParagraphStyle(
        "title", fontName=font, fontSize=22, leading=30, alignment=TA_CENTER, textColor=red
    )
    centred = ParagraphStyle("centred", fontName=font, fontSize=10.5, leading=16, alignment=TA_CENTER)
    heading = ParagraphStyle(
        "h2", fontName=font, fontSize=15, leading=22, textColor=red, spaceBefore=10, spaceAfter=4
    )
    caption = ParagraphStyle("h3", fontName=font, fontSize=11.5, leading=16, spaceBefore=6, spaceAfter=3)
    body = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=17, firstLineIndent=21)
    cell = ParagraphStyle("cell", fontName=font, fontSize=8.5, leading=11)
    note = ParagraphStyle(
        "note", fontName=font, fontSize=8.5, leading=13, textColor=colors.HexColor("#555555")
    )
    width = A4[0] - 32 * mm

    story: list[object] = [
        Paragraph(escape(document.title), title),
        Paragraph(escape(document.subtitle), centred),
        Paragraph(escape(document.generated), centred),
        Spacer(1, 6 * mm),
    ]
    cards = [
        [
            Paragraph(
                f'<font size="8" color="#666666">{escape(label)}</font><br/>'
                f'<font size="13" color="#8b1a10">{escape(value)}</font> <font size="8">{escape(unit)}</font>',
                ParagraphStyle("card", fontName=font, leading=16),
            )
            for label, value, unit in document.headline[start : start + 4]
        ]
        for start in range(0, len(document.headline), 4)
    ]
    grid = PdfTable(cards, colWidths=[width / 4] * 4)
    grid.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#e5c9c5")),
                ("INNERGRID", (0, 0), (-1, -1), 0.6, colors.HexColor("#e5c9c5")),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fdf6f5")),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    story.append(grid)

    def pdf_table(table: Table) -> PdfTable:
        rows: list[list[Any]] = [[Paragraph(f"<b>{escape(name)}</b>", cell) for name in table.columns]]
        lines = [*table.rows, *([table.total] if table.total is not None else [])]
        rows += [
            [escape(value) if index else Paragraph(escape(value), cell) for index, value in enumerate(line)]
            for line in lines
        ]
        first = 2.4 if len(table.columns) > 4 else 1.6
        unit = width / (first + len(table.columns) - 1)
        widths = [unit * first] + [unit] * (len(table.columns) - 1)
        if table.numeric_from > 1:  # a list of merchants: the name takes the room
            widths = [unit * 0.45, unit * 2.7, unit * 0.8, unit * 0.6, unit * 1.35] + [unit * 0.95] * (
                len(table.columns) - 5
            )
            widths = [value * width / sum(widths) for value in widths]
        shown = PdfTable(rows, colWidths=widths, repeatRows=1)
        style: list[Any] = [
            ("FONT", (0, 0), (-1, -1), font, 8.5),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f3e3e1")),
            ("ALIGN", (table.numeric_from, 1), (-1, -1), "RIGHT"),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ]
        if table.total is not None:
            style.append(("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#faf3f2")))
        shown.setStyle(TableStyle(style))
        return shown

    for section in document.sections:
        story.append(CondPageBreak(60 * mm))
        story.append(Paragraph(escape(section.title), heading))
        story += [Paragraph(escape(text), body) for text in section.paragraphs]
        if section.side_by_side and len(section.charts) == 2:
            pair = PdfTable(
                [[charts.to_drawing(scene, width / 2 - 6) for scene in section.charts]],
                colWidths=[width / 2] * 2,
            )
            pair.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story.append(pair)
        else:
            story += [charts.to_drawing(scene, width) for scene in section.charts]
        for name, table in section.tables:
            story.append(
                KeepTogether([Paragraph(escape(name), caption), pdf_table(table)])
                if len(table.rows) < 25
                else Paragraph(escape(name), caption)
            )
            if len(table.rows) >= 25:
                story.append(pdf_table(table))
    story.append(Spacer(1, 6 * mm))
    story.append(Paragraph("说明", caption))
    story += [Paragraph(escape(text), note) for text in document.notes]

    footer_text = document.title.replace("·", "・")

    def footer(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.HexColor("#777777"))
        canvas.drawCentredString(A4[0] / 2, 10 * mm, f"{footer_text}    第 {doc.page} 页")
        canvas.restoreState()

    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=document.title,
        author="资阳市商务局",
    ).build(story, onFirstPage=footer, onLaterPages=footer)  # type: ignore[arg-type]
    return buffer.getvalue()


async def render(session: AsyncSession, *, campaign_id: str, clock: Clock) -> tuple[str, str, bytes]:
    """(file stem, HTML, PDF) of the campaign's summary."""
    document = await gather(session, campaign_id=campaign_id, clock=clock)
    campaign = await get_campaign(session, campaign_id=campaign_id)
    return f"{campaign.code}-活动总结", render_html(document), render_pdf(document)
