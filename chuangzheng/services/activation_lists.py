"""A township's printed activation list (``ActivationSheet`` from
:func:`chuangzheng.services.activation.issue_township_codes`) as PDF (fpdf2, the Chinese font
embedded) and as Excel (through ``activities.spreadsheets``, so no name becomes a formula).

Both carry the same columns (乡镇, 组织, 角色, 姓名, 账号, 激活码, 有效期至, in Asia/Shanghai
time, and 邮件: whether the person was also mailed the code, see ``code_mail``), the address
of the activation page and the warning that printing again replaces the codes.
"""

from __future__ import annotations

import logging

from fpdf import FPDF

from activities.certificates import CHINESE_FONT
from activities.spreadsheets import workbook_bytes
from chuangzheng.services.activation import ActivationSheet
from chuangzheng.services.code_mail import MailOutcome, activation_url
from domain.calendar import SHANGHAI
from domain.organisation import Role

HEAD = ["乡镇", "组织", "角色", "姓名", "账号", "激活码", "有效期至", "邮件"]
#: The 邮件 column: what became of the mail with the same code.
MAIL_MARKS: dict[MailOutcome, str] = {
    MailOutcome.NONE: "",
    MailOutcome.SENT: "已发送",
    MailOutcome.FAILED: "发送失败",
}
#: Said under the table: a person marked 已发送 has the code in their own mailbox too.
MAIL_NOTE = (
    "“邮件”栏标“已发送”的人员已通过本人邮箱收到同一激活码；"
    "标“发送失败”或空白的，请将本名单上的激活码交给本人。"
)
ROLE_NAMES: dict[Role, str] = {role: role.label for role in Role}
#: Said on every list and on the page that prints it: only hashes are kept.
REPLACES_WARNING = (
    "注意：系统只保存激活码的摘要，打印即签发。再次打印本乡镇名单会重新签发并作废此前打印的激活码。"
)

# fontTools warns about the collection's bitmap tables it does not subset; harmless noise.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)


__all__ = [
    "HEAD",
    "MAIL_MARKS",
    "MAIL_NOTE",
    "REPLACES_WARNING",
    "activation_list_pdf",
    "activation_list_xlsx",
    "activation_url",
    "how_to",
]


def how_to(public_base_url: str) -> str:
    """The one line that tells a person what to do with their code."""
    return (
        f"激活方法：用浏览器打开 {activation_url(public_base_url)} ，填写账号和激活码，"
        "设置不少于 10 位、不含账号的新密码；激活码只能使用一次，过期后请向县委活动办申请重置。"
    )


def _rows(sheet: ActivationSheet) -> list[list[str]]:
    return [
        [
            e.township,
            e.org_name,
            ROLE_NAMES.get(e.role, e.role.value),
            e.display_name,
            e.username,
            e.code,
            e.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
            MAIL_MARKS[e.mail],
        ]
        for e in sheet.entries
    ]


def _title(sheet: ActivationSheet) -> str:
    return f"{sheet.township}账号激活码"


def _issued_line(sheet: ActivationSheet) -> str:
    at = sheet.issued_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return f"签发：{sheet.issued_by}，{at}（北京时间）；共 {len(sheet.entries)} 个账号。"


def activation_list_xlsx(sheet: ActivationSheet, public_base_url: str) -> bytes:
    """The list as one Excel sheet: the columns, then the how-to and the warning below."""
    tail = [[], [how_to(public_base_url)], [REPLACES_WARNING], [MAIL_NOTE], [_issued_line(sheet)]]
    return workbook_bytes(_title(sheet), HEAD, [*_rows(sheet), *tail])


def activation_list_pdf(sheet: ActivationSheet, public_base_url: str) -> bytes:
    """The list as an A4 landscape PDF to cut into slips or hand out as it is."""
    pdf = FPDF(orientation="landscape", unit="mm", format="A4")
    pdf.set_creation_date(sheet.issued_at)
    pdf.set_title(_title(sheet))
    pdf.add_font("wqy", fname=str(CHINESE_FONT))
    pdf.add_font("wqy", style="B", fname=str(CHINESE_FONT))  # the table's heading row
    pdf.add_page()
    pdf.set_font("wqy", size=16)
    pdf.multi_cell(0, 10, _title(sheet), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("wqy", size=10)
    for line in (how_to(public_base_url), REPLACES_WARNING, MAIL_NOTE, _issued_line(sheet)):
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("wqy", size=10)
    widths = (28, 52, 18, 38, 46, 42, 33, 20)
    with pdf.table(col_widths=widths) as table:
        for values in [HEAD, *_rows(sheet)]:
            row = table.row()
            for text in values:
                row.cell(text)
    if not sheet.entries:
        pdf.ln(2)
        pdf.multi_cell(0, 6, "本乡镇没有尚未激活的账号。", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
