"""Jobs over many merchants: importing the commerce bureau's invitation list (邀约名单) and exporting
the city's final list (参与商家名单) as the workbook an official hands on.

The import reads the whole file, reports every bad row by the row number the clerk sees in Excel and
invites the good rows in one transaction. The credit code is the key: a code already invited to the
campaign is counted, not invited twice, so importing the same file again changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.errors import ConflictError, InvalidInput, Problem
from huimin.kit.clock import Clock, to_local
from huimin.kit.hashing import mask
from huimin.kit.ids import new_id
from huimin.kit.sheets import (
    BORDER,
    HEADER_SEARCH_ROWS,
    NUMBER_LOST,
    CellValue,
    RowProblem,
    SheetError,
    cell_at,
    data_rows,
    find_header_row,
    header_key,
    looks_scientific,
    read_rows,
    write_header,
    write_title,
)
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants import domain
from huimin.merchants.domain import Action, MerchantStatus
from huimin.merchants.models import MerchantRow
from huimin.merchants.repository import MerchantRepository
from huimin.merchants.service import MerchantSealer, require_campaign

__all__ = [
    "INVITATION_HEADERS",
    "Export",
    "ImportReport",
    "InvitationRow",
    "RowProblem",
    "credit_code_cell",
    "export_final_list",
    "import_invitations",
    "read_invitation_rows",
]

# Accepted header names per field, compared after NFKC folding, trimming and case-folding. The first
# is what the export writes, so an exported list reads back.
INVITATION_HEADERS: dict[str, tuple[str, ...]] = {
    "legal_name": ("企业名称", "商户名称", "商家名称", "单位名称", "名称", "legal_name"),
    "credit_code": ("统一社会信用代码", "社会信用代码", "信用代码", "credit_code"),
    "jurisdiction": ("所属区县", "所属辖区", "区县", "辖区", "jurisdiction"),
    "category": ("行业类别", "行业", "category"),
    "merchant_class": ("商家类型", "商家类别", "企业类型", "merchant_class"),
    "registered_address": ("注册地址", "地址", "registered_address"),
    "contact_name": ("联系人", "contact_name"),
    "contact_phone": ("联系电话", "联系方式", "手机号", "contact_phone"),
}
REQUIRED = ("legal_name", "credit_code", "jurisdiction", "category", "merchant_class")
_ALL_HEADERS = {header_key(name): field for field, names in INVITATION_HEADERS.items() for name in names}


@dataclass(frozen=True)
class InvitationRow:
    row: int  # as the spreadsheet shows it
    cells: dict[str, CellValue]  # field -> the cell as the file holds it


@dataclass(frozen=True)
class ImportReport:
    total_rows: int
    invited: int
    already_invited: int
    rejected: list[RowProblem]


def _file_error(message: str) -> InvalidInput:
    return InvalidInput([Problem("file", message)], code="invalid_invitation_file")


def read_invitation_rows(
    source: Path | bytes, *, suffix: str | None = None
) -> tuple[list[InvitationRow], dict[str, str]]:
    """The data rows of an invitation list and, per field, the header the file used for it.

    Raises InvalidInput (code invalid_invitation_file) for an unreadable file or a header row that
    lacks a required column or names one twice.
    """
    try:
        rows = read_rows(source, suffix=suffix, what="the invitation list")
    except SheetError as error:
        raise _file_error(str(error)) from None
    required = ", ".join(INVITATION_HEADERS[field][0] for field in REQUIRED)
    if not rows:
        raise _file_error(f"the file is empty: the first row must be a header naming {required}")
    header_index = find_header_row(rows, [header_key(name) for name in INVITATION_HEADERS["credit_code"]])
    if header_index is None:
        raise _file_error(
            f"no credit code column: a header row within the first {HEADER_SEARCH_ROWS} rows must name {required}"
        )
    columns: dict[str, int] = {}
    headers: dict[str, str] = {}
    for index, value in enumerate(rows[header_index]):
        field = _ALL_HEADERS.get(header_key(value))
        if field is None:
            continue
        if field in columns:
            raise _file_error(
                f"two columns are {field.replace('_', ' ')}: {headers[field]} and {value}; keep one"
            )
        columns[field] = index
        headers[field] = str(value).strip()
    missing = [INVITATION_HEADERS[field][0] for field in REQUIRED if field not in columns]
    if missing:
        raise _file_error(f"missing column {', '.join(missing)} (row {header_index + 1} is the header)")
    return (
        [
            InvitationRow(number, {field: cell_at(values, index) for field, index in columns.items()})
            for number, values in data_rows(rows, header_index)
        ],
        headers,
    )


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number Excel kept as a number: 11 digits survive a float
    return str(value).strip()


def credit_code_cell(value: CellValue) -> tuple[str, str | None]:
    """The credit code text, or why the cell cannot hold one."""
    if isinstance(value, float):
        return "", NUMBER_LOST  # 18 digits do not survive a float
    text = _text(value)
    if looks_scientific(domain.normalise_credit_code(text)):
        return "", NUMBER_LOST
    return text, None


async def import_invitations(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    source: Path | bytes,
    file_name: str,
    sealer: MerchantSealer,
    clock: Clock,
) -> ImportReport:
    """Invite every good row of an invitation list; report every bad one. Idempotent by credit code."""
    principal.require(Permission.MERCHANT_INVITE)
    await require_campaign(session, campaign_id)
    rows, headers = read_invitation_rows(source, suffix=Path(file_name).suffix)

    def column(field: str) -> str:
        return headers.get(field, INVITATION_HEADERS[field][0])

    rejected: list[RowProblem] = []
    first_row: dict[str, int] = {}  # credit code -> the row that named it first
    candidates: list[tuple[int, domain.Invitation]] = []
    for row in rows:
        code_text, code_problem = credit_code_cell(row.cells.get("credit_code"))
        invitation, problems = domain.invitation_problems(
            credit_code=code_text,
            legal_name=_text(row.cells.get("legal_name")),
            jurisdiction=_text(row.cells.get("jurisdiction")),
            category=_text(row.cells.get("category")),
            merchant_class=_text(row.cells.get("merchant_class")),
            registered_address=_text(row.cells.get("registered_address")),
            contact_name=_text(row.cells.get("contact_name")),
            contact_phone=_text(row.cells.get("contact_phone")),
        )
        reasons = [
            f"{column(problem.field)}: {code_problem if problem.field == 'credit_code' and code_problem else problem.message}"
            for problem in problems
        ]
        if invitation is None:
            rejected.append(RowProblem(row.row, " | ".join(reasons)))
            continue
        if invitation.credit_code in first_row:
            rejected.append(RowProblem(row.row, f"duplicate of row {first_row[invitation.credit_code]}"))
            continue
        first_row[invitation.credit_code] = row.row
        candidates.append((row.row, invitation))

    repository = MerchantRepository(session)
    codes = [invitation.credit_code for _, invitation in candidates]
    dishonest = await repository.dishonest_codes(codes)
    known = await repository.known_codes(campaign_id, codes)
    now = clock.now()
    merchants: list[dict[str, object]] = []
    transitions: list[dict[str, object]] = []
    for number, invitation in candidates:
        if invitation.credit_code in dishonest:
            rejected.append(RowProblem(number, f"{column('credit_code')}: on the dishonest list (失信名单)"))
            continue
        if invitation.credit_code in known:
            continue
        merchant_id = new_id("mch")
        phone = invitation.contact_phone
        merchants.append(
            {
                "id": merchant_id,
                "campaign_id": campaign_id,
                "credit_code": invitation.credit_code,
                "legal_name": invitation.legal_name,
                "jurisdiction": invitation.jurisdiction.value,
                "category": invitation.category.value,
                "merchant_class": invitation.merchant_class.value,
                "registered_address": invitation.registered_address,
                "business_hours": "",
                "bank_name": "",
                "bank_account_masked": "",
                "contact_name": invitation.contact_name,
                "contact_phone_sealed": sealer.contact_phone.seal(phone) if phone else None,
                "contact_phone_masked": mask(phone) if phone else "",
                "status": MerchantStatus.INVITED.value,
                "invited_at": now,
                "status_changed_at": now,
            }
        )
        transitions.append(
            {
                "merchant_id": merchant_id,
                "action": Action.INVITE.value,
                "from_status": None,
                "to_status": MerchantStatus.INVITED.value,
                "actor_id": principal.actor_id,
                "actor_name": principal.name or principal.actor_id,
                "actor_role": principal.role.value,
                "actor_jurisdiction": principal.jurisdiction,
                "reason": f"{file_name[:150]}, row {number}",
                "at": now,
            }
        )
    try:
        await repository.insert_merchants(merchants, transitions)
    except IntegrityError:
        raise ConflictError(
            "another import invited some of these merchants at the same moment: import the file again",
            code="import_conflict",
        ) from None
    rejected.sort(key=lambda problem: problem.row)
    return ImportReport(
        total_rows=len(rows), invited=len(merchants), already_invited=len(known), rejected=rejected
    )


# The final list, as the workbook an official hands on


@dataclass(frozen=True)
class Export:
    file_name: str
    content: bytes


_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("企业名称", 32),
    ("统一社会信用代码", 22),
    ("所属区县", 12),
    ("行业类别", 10),
    ("商家类型", 14),
    ("注册地址", 36),
    ("营业时间", 18),
    ("收银终端", 22),
    ("开户银行", 20),
    ("结算账号", 24),
    ("联系人", 10),
    ("联系电话", 15),
    ("状态", 10),
    ("列入名单时间", 18),
    ("承诺书签署时间", 18),
)
_EXPORTED_STATUSES = (MerchantStatus.LISTED, MerchantStatus.ACTIVE, MerchantStatus.SUSPENDED)


def _local(instant: datetime | None) -> str:
    return "" if instant is None else to_local(instant).strftime("%Y-%m-%d %H:%M")


def _merchant_sheet(
    sheet: Worksheet,
    *,
    campaign_name: str,
    jurisdiction: Jurisdiction,
    rows: Sequence[MerchantRow],
    exported_at: datetime,
) -> None:
    write_title(
        sheet,
        f"{campaign_name}参与商家名单（{jurisdiction.label}）",
        f"导出时间：{_local(exported_at)}    共 {len(rows)} 户",
        len(_COLUMNS),
    )
    write_header(sheet, _COLUMNS)
    for number, row in enumerate(rows, start=1):
        sheet.append(
            [
                number,
                row.legal_name,
                row.credit_code,
                Jurisdiction(row.jurisdiction).label,
                Category(row.category).label,
                MerchantClass(row.merchant_class).label,
                row.registered_address,
                row.business_hours,
                "、".join(terminal.terminal_id for terminal in row.terminals),
                row.bank_name,
                row.bank_account_masked,  # never the clear account (SPEC §11.6)
                row.contact_name,
                row.contact_phone_masked,
                MerchantStatus(row.status).label,
                _local(row.listed_at),
                _local(row.committed_at),
            ]
        )
        for column in range(1, len(_COLUMNS) + 1):
            cell = sheet.cell(row=number + 3, column=column)
            cell.border = BORDER
            cell.number_format = "@"  # credit codes and accounts stay text if the file is edited
    sheet.print_title_rows = "3:3"
    sheet.page_setup.orientation = "landscape"


def _summary_sheet(
    sheet: Worksheet,
    *,
    campaign_name: str,
    by_jurisdiction: dict[Jurisdiction, list[MerchantRow]],
    exported_at: datetime,
) -> None:
    columns = [
        ("序号", 6),
        ("区县", 14),
        *((status.label, 12) for status in _EXPORTED_STATUSES),
        ("合计", 10),
    ]
    total = sum(len(rows) for rows in by_jurisdiction.values())
    write_title(
        sheet,
        f"{campaign_name}参与商家名单汇总",
        f"导出时间：{_local(exported_at)}    共 {total} 户",
        len(columns),
    )
    write_header(sheet, columns)
    for number, (jurisdiction, rows) in enumerate(by_jurisdiction.items(), start=1):
        counts = [sum(1 for row in rows if row.status == status) for status in _EXPORTED_STATUSES]
        sheet.append([number, jurisdiction.label, *counts, len(rows)])
    everything = [row for rows in by_jurisdiction.values() for row in rows]
    sheet.append(
        [
            "",
            "合计",
            *(sum(1 for row in everything if row.status == status) for status in _EXPORTED_STATUSES),
            total,
        ]
    )
    for line in sheet.iter_rows(min_row=4, max_row=sheet.max_row, max_col=len(columns)):
        for cell in line:
            cell.border = BORDER


async def export_final_list(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    jurisdiction: Jurisdiction | None,
    clock: Clock,
) -> Export:
    """The final list (listed, active and suspended merchants) of one jurisdiction, or of the whole
    city with a summary sheet and one sheet per jurisdiction. Without a jurisdiction a county
    reviewer gets its own; another jurisdiction's list does not exist for it (404)."""
    principal.require(Permission.MERCHANT_EXPORT)
    campaign = await require_campaign(session, campaign_id)
    if principal.jurisdiction is not None:
        if jurisdiction is not None:
            principal.require_scope(jurisdiction, what="jurisdiction", object_id=jurisdiction.value)
        jurisdiction = principal.jurisdiction
    scope = list(Jurisdiction) if jurisdiction is None else [jurisdiction]
    rows = await MerchantRepository(session).final_list(campaign_id, scope)
    by_jurisdiction: dict[Jurisdiction, list[MerchantRow]] = {item: [] for item in scope}
    for row in rows:
        by_jurisdiction[Jurisdiction(row.jurisdiction)].append(row)
    now = clock.now()
    workbook = Workbook()
    first = workbook.worksheets[0]
    if jurisdiction is None:
        first.title = "汇总"
        _summary_sheet(first, campaign_name=campaign.name, by_jurisdiction=by_jurisdiction, exported_at=now)
    for index, (item, merchants) in enumerate(by_jurisdiction.items()):
        sheet = first if jurisdiction is not None and index == 0 else workbook.create_sheet()
        sheet.title = item.label
        _merchant_sheet(
            sheet, campaign_name=campaign.name, jurisdiction=item, rows=merchants, exported_at=now
        )
    buffer = io.BytesIO()
    workbook.save(buffer)
    await audit.record(
        session,
        principal=principal,
        action="export.final_list",
        object_type="campaign",
        object_id=campaign_id,
        at=now,
        detail={"jurisdiction": jurisdiction.value if jurisdiction else None, "rows": len(rows)},
    )
    scope_label = "全市" if jurisdiction is None else jurisdiction.label
    return Export(
        file_name=f"{campaign.code}-参与商家名单-{scope_label}-{to_local(now):%Y%m%d}.xlsx",
        content=buffer.getvalue(),
    )
