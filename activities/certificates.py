"""荣誉证书: one A4 landscape PDF per published honour, with the Chinese font embedded.

Generated on request from the immutable honours row, so it needs no storage; the creation
date is the publication time, which makes the same honour give the same text every time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

from domain.calendar import SHANGHAI

#: Installed by deploy/system-packages.sh (fonts-wqy-zenhei).
CHINESE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
_RED = (200, 16, 46)

# fontTools warns about the collection's bitmap tables it does not subset; harmless noise.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Certificate:
    """What a certificate says."""

    certificate_no: str
    nominee: str
    org_name: str
    title: str  # 先进基层党组织 / 优秀共产党员 / 优秀党务工作者
    standard: str  # 五个好 / 五带头 / 五个强
    round_name: str
    for_person: bool
    issuer: str
    published_at: datetime


def _chinese_date(moment: datetime) -> str:
    local = moment.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日"


def render_certificate(cert: Certificate, font: Path = CHINESE_FONT) -> bytes:
    """The certificate as PDF bytes (text is extractable: the font is embedded as TrueType)."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_creation_date(cert.published_at)
    pdf.set_title(f"荣誉证书 {cert.certificate_no}")
    pdf.set_auto_page_break(False)
    pdf.add_font("zh", fname=str(font))
    pdf.add_page()
    pdf.set_draw_color(*_RED)
    pdf.set_line_width(2)
    pdf.rect(12, 12, 273, 186)
    pdf.set_line_width(0.5)
    pdf.rect(17, 17, 263, 176)

    pdf.set_text_color(*_RED)
    pdf.set_font("zh", size=40)
    pdf.set_xy(20, 35)
    pdf.cell(257, 20, "荣誉证书", align="C")

    pdf.set_text_color(0, 0, 0)
    pdf.set_font("zh", size=20)
    pdf.set_xy(40, 75)
    pdf.cell(217, 12, f"{cert.nominee}：")
    who = f"（{cert.org_name}）" if cert.for_person else ""
    body = (
        f"    在创先争优活动（{cert.round_name}）中{who}表现突出，"
        f"经县委考核组综合考评、县委常委会审定，被评为“{cert.standard}”{cert.title}。"
        "特发此证，以资鼓励。"
    )
    pdf.set_xy(40, 90)
    pdf.multi_cell(217, 12, body)

    pdf.set_font("zh", size=18)
    pdf.set_xy(150, 150)
    pdf.cell(107, 10, cert.issuer, align="C")
    pdf.set_xy(150, 162)
    pdf.cell(107, 10, _chinese_date(cert.published_at), align="C")

    pdf.set_font("zh", size=10)
    pdf.set_text_color(90, 90, 90)
    pdf.set_xy(25, 180)
    pdf.cell(120, 8, f"证书编号：{cert.certificate_no}")
    return bytes(pdf.output())
