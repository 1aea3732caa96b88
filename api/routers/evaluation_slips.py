"""The printable list of one-time ballot tokens (for offline meetings): an HTML page with
inline SVG QR codes, or an A4 PDF (fpdf2, WenQuanYi Zen Hei) with PNG QR codes.

Slips are numbered and say only the rater kind: no names, on purpose. Whoever hands them
out at the meeting deals them at random within each kind, so nobody can tie a slip, and
therefore a ballot, to a person.

Printing is bounded and off the event loop: one request prints one page of
:data:`SLIPS_PER_PAGE` slips, and the QR codes and the PDF (about 10 ms of pure-Python CPU a
slip, seconds a page) are drawn in the API's parse processes (``api.blocking.parse_off_loop``):
in a thread they would hold the GIL and stall every other request of the process. Hence the
module-level, picklable :func:`qr_svgs` and :func:`slips_pdf`, which take plain values. A
parse process imports this module to run them, so it imports only what drawing needs at
module level; the token derivation and the models are imported where they are used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import segno
from fpdf import FPDF
from markupsafe import Markup

if TYPE_CHECKING:
    from activities.tables import EvaluationRow
    from domain.evaluation import RaterKind

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
#: Slips per printed page (ten A4 sheets of the PDF, about a second of QR codes). An
#: evaluation has at most ``domain.evaluation.MAX_RATERS`` slips, so ten pages.
SLIPS_PER_PAGE = 100


@dataclass(frozen=True)
class Slip:
    """One printed ballot slip; ``svg`` is its QR code once drawn (:func:`qr_svgs`)."""

    number: int
    kind: RaterKind
    token: str
    url: str
    svg: str = ""

    def qr_svg(self) -> Markup:
        """The QR code as inline SVG (segno output, drawn beforehand: safe markup)."""
        return Markup(self.svg)


def issued(row: EvaluationRow) -> int:
    """How many slips the evaluation has."""
    return row.issued_members + row.issued_non_members


def page_count(row: EvaluationRow) -> int:
    """How many pages of :data:`SLIPS_PER_PAGE` its slips fill (at least one)."""
    return max(1, -(-issued(row) // SLIPS_PER_PAGE))


def slips(row: EvaluationRow, secret: str, base_url: str, page: int = 1) -> list[Slip]:
    """The slips of one page (1-based) of an evaluation, members first, derived again from
    the secret, numbered across pages; no QR code drawn yet."""
    from activities.evaluations import kind_of, token_for  # not in a parse process

    first = (page - 1) * SLIPS_PER_PAGE
    result = []
    for index in range(first, min(first + SLIPS_PER_PAGE, issued(row))):
        token = token_for(secret, row.evaluation_id, index)
        kind = kind_of(index, row.issued_members)
        result.append(Slip(index + 1, kind, token, f"{base_url.rstrip('/')}/ballot/{token}"))
    return result


def qr_svgs(urls: list[str]) -> list[str]:
    """The QR code of each URL as inline SVG (run in a parse process: CPU-bound)."""
    return [segno.make(url, error="m").svg_inline(scale=3) for url in urls]


def title_of(row: EvaluationRow) -> str:
    """What the slips say is being evaluated."""
    what = "党员评议" if row.target == "member" else "基层党组织群众评议"  # EvaluationTarget
    return f"{row.subject} · {what}"


def printed(items: list[Slip]) -> list[tuple[int, str, str, str]]:
    """What :func:`slips_pdf` prints of each slip, as plain values: number, kind, token, URL."""
    return [(s.number, s.kind.label, s.token, s.url) for s in items]


def slips_pdf(title: str, items: list[tuple[int, str, str, str]], closes_at: str) -> bytes:
    """A4, two columns by five rows of slips per page (run in a parse process: CPU-bound);
    ``title`` is :func:`title_of` the evaluation, ``items`` :func:`printed` slips."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font("zh", fname=str(FONT))
    width, height = 95.0, 55.0
    for index, (number, kind, token, url) in enumerate(items):
        if index % 10 == 0:
            pdf.add_page()
        x = 10 + (index % 2) * width
        y = 10 + ((index % 10) // 2) * height
        pdf.rect(x, y, width - 4, height - 4)
        png = io.BytesIO()
        segno.make(url, error="m").save(png, kind="png", scale=4)
        png.seek(0)
        pdf.image(png, x=x + 2, y=y + 4, w=38)
        pdf.set_font("zh", size=10)
        pdf.set_xy(x + 42, y + 4)
        pdf.multi_cell(width - 48, 5, title)
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.multi_cell(width - 48, 5, f"第 {number} 号 · {kind}")
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.multi_cell(width - 48, 5, f"凭证号：{token}")
        pdf.set_xy(x + 42, pdf.get_y() + 1)
        pdf.set_font("zh", size=8)
        pdf.multi_cell(width - 48, 4, f"扫码投票，一票一码，仅限一次。截止：{closes_at}")
    return bytes(pdf.output())
