"""The printable list of one-time ballot tokens (for offline meetings): an HTML page with
inline SVG QR codes, or an A4 PDF (fpdf2, WenQuanYi Zen Hei) with PNG QR codes.

Slips are numbered and say only the rater kind: no names, on purpose. Whoever hands them
out at the meeting deals them at random within each kind, so nobody can tie a slip, and
therefore a ballot, to a person.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import segno
from fpdf import FPDF
from markupsafe import Markup

from activities.evaluations import kind_of, token_for
from activities.tables import EvaluationRow
from domain.evaluation import EvaluationTarget, RaterKind

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


@dataclass(frozen=True)
class Slip:
    """One printed ballot slip."""

    number: int
    kind: RaterKind
    token: str
    url: str

    def qr_svg(self) -> Markup:
        """The QR code as inline SVG (segno output: safe markup)."""
        return Markup(segno.make(self.url, error="m").svg_inline(scale=3))


def slips(row: EvaluationRow, secret: str, base_url: str) -> list[Slip]:
    """Every slip of an evaluation, members first, derived again from the secret."""
    total = row.issued_members + row.issued_non_members
    result = []
    for index in range(total):
        token = token_for(secret, row.evaluation_id, index)
        kind = kind_of(index, row.issued_members)
        result.append(Slip(index + 1, kind, token, f"{base_url.rstrip('/')}/ballot/{token}"))
    return result


def title_of(row: EvaluationRow) -> str:
    """What the slips say is being evaluated."""
    what = "党员评议" if row.target == EvaluationTarget.MEMBER.value else "基层党组织群众评议"
    return f"{row.subject} · {what}"


def slips_pdf(row: EvaluationRow, items: list[Slip], closes_at: str) -> bytes:
    """A4, two columns by five rows of slips per page."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font("zh", fname=str(FONT))
    width, height = 95.0, 55.0
    for index, slip in enumerate(items):
        if index % 10 == 0:
            pdf.add_page()
        x = 10 + (index % 2) * width
        y = 10 + ((index % 10) // 2) * height
        pdf.rect(x, y, width - 4, height - 4)
        png = io.BytesIO()
        segno.make(slip.url, error="m").save(png, kind="png", scale=4)
        png.seek(0)
        pdf.image(png, x=x + 2, y=y + 4, w=38)
        pdf.set_font("zh", size=10)
        pdf.set_xy(x + 42, y + 4)
        pdf.multi_cell(width - 48, 5, title_of(row))
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.multi_cell(width - 48, 5, f"第 {slip.number} 号 · {slip.kind.label}")
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.multi_cell(width - 48, 5, f"凭证号：{slip.token}")
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.set_font("zh", size=8)
        pdf.multi_cell(width - 48, 4, f"扫码投票，一票一码，仅限一次。截止：{closes_at}")
    return bytes(pdf.output())
