"""Look-alike text and hostile file names over the real stack (Temporal dev server, the
project's worker, uvicorn; SQLite and PostgreSQL, as every API test):

* a re-imported roster whose 指导员 and 书记 carry zero-width characters names the same
  people: no look-alike account is created, nobody loses their organisation;
* a roster naming another county's organisation id points at the sheet row the clerk
  sees, in the "第n行·组织编号" form of every other roster error;
* an uploaded file keeps only its own name (``..\\..\\win.pdf`` is ``win.pdf``), and a name
  too long for its column is a 422 that says so, however long it is.

The roster tests import into a county of their own (its accounts are prefixed with its
code), so the shared stack's roster and accounts stay as the other tests expect them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import UploadedFileRow, UserRow
from api.auth import upsert_user
from api.routers.files import MAX_FILE_NAME_CHARS
from chuangzheng.services.counties import create_county
from domain.organisation import Role
from domain.text import BIDI_REASON
from tests.api.conftest import Stack, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员\n"


def _new_county(stack: Stack) -> str:
    """A county of its own with its county office ``<code>.county``; returns the code."""
    code = f"hygiene-{uuid.uuid4().hex[:6]}"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=code, name="净字县", now=datetime.now(UTC))
        upsert_user(
            session,
            username=f"{code}.county",
            display_name="净字县县委活动办",
            password="pw-测试-123",
            role=Role.COUNTY_OFFICE,
            county=code,
        )
    engine.dispose()
    return code


def _accounts(stack: Stack, county: str) -> dict[str, str]:
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        rows = session.scalars(select(UserRow).where(UserRow.county == county)).all()
        accounts = {r.username: r.scope_key for r in rows}
    engine.dispose()
    return accounts


def _csv(*rows: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("名册.csv", (HEADER + "\n".join(rows) + "\n").encode(), "text/csv")}


async def test_a_roster_with_zero_width_characters_names_the_same_people(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    code = _new_county(stack)
    office = await token(http, f"{code}.county")
    p = f"{code}-org"
    plain = [
        f"{p}-1,东关村党支部,农村,东关镇,县农委,30,刘三,王二",
        f"{p}-2,西关村党支部,农村,东关镇,县农委,22,甲二,王二",
    ]
    first = await http.post("/api/v1/roster", files=_csv(*plain), headers=office)
    assert first.status_code == 200, first.text
    before = _accounts(stack, code)
    assert before[f"{code}.instructor-王二"] == "王二"
    assert before[f"{code}.secretary-{p}-1-刘三"] == f"{p}-1"

    looks_alike = [
        f"{p}-1\u200b,东关村党支部,农村,\ufeff东关镇,县农委,30,刘\u200d三,王二\u200b",
        f"{p}-2,西关村党支部,农村,东关镇\u3000,县农委,22,甲二,王\u2060二",
    ]
    again = await http.post("/api/v1/roster", files=_csv(*looks_alike), headers=office)
    assert again.status_code == 200, again.text
    counts = again.json()
    assert (counts["added"], counts["updated"], counts["unchanged"]) == (0, 0, 2), counts
    assert (counts["accounts_created"], counts["accounts_unscoped"]) == (0, 0), counts
    assert _accounts(stack, code) == before  # no look-alike account, every scope kept

    # A direction override is refused (it can disguise a name), with its row.
    disguised = [plain[0], plain[1].replace("王二", "王\u202e二")]
    refused = await http.post("/api/v1/roster", files=_csv(*disguised), headers=office)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "第3行·指导员", "reason": BIDI_REASON}]
    assert _accounts(stack, code) == before


async def test_another_countys_id_is_reported_on_the_sheet_row(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    code = _new_county(stack)
    office = await token(http, f"{code}.county")
    # org-a is the default county's. Its sheet row is 2; then, after a blank row, row 4.
    stolen = "org-a,城关镇东关村党支部,农村,城关镇,县农委,42,李明,张指导"
    refused = await http.post("/api/v1/roster", files=_csv(stolen), headers=office)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "第2行·组织编号", "reason": "组织编号“org-a”不可用，请核对或联系上级组织部"}
    ]
    own = f"{code}-org-1,东关村党支部,农村,东关镇,县农委,30,刘三,王二"
    refused = await http.post("/api/v1/roster", files=_csv(own, ",,,,,,,", stolen), headers=office)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "第4行·组织编号", "reason": "组织编号“org-a”不可用，请核对或联系上级组织部"}
    ]


def _upload(name: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, f"材料 {uuid.uuid4()}".encode(), "application/pdf")}


def _stored_names(stack: Stack, round_id: str, sha256: str) -> list[str]:
    engine = make_engine(stack.settings.database_url)
    with engine.connect() as connection:
        names = connection.scalars(
            select(UploadedFileRow.filename).where(
                UploadedFileRow.round_id == round_id, UploadedFileRow.sha256 == sha256
            )
        ).all()
    engine.dispose()
    return list(names)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("..\\..\\win.pdf", "win.pdf"),
        ("C:\\fakepath\\材料.pdf", "材料.pdf"),
        ("../../etc/x.pdf", "x.pdf"),
        ("a/b\\c.pdf", "c.pdf"),
    ],
)
async def test_an_uploaded_file_keeps_only_its_own_name(
    http: httpx.AsyncClient, stack: Stack, round_id: str, sent: str, kept: str
) -> None:
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload(sent),
        headers=await token(http, "sec-a"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == kept
    assert _stored_names(stack, round_id, response.json()["sha256"]) == [kept]


@pytest.mark.parametrize("length", [MAX_FILE_NAME_CHARS + 1, 1000, 5000, 20000])
@pytest.mark.parametrize("letter", ["a", "材"])
async def test_a_file_name_too_long_is_a_422_naming_the_file_name(
    http: httpx.AsyncClient, round_id: str, length: int, letter: str
) -> None:
    name = letter * (length - len(".pdf")) + ".pdf"
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload(name),
        headers=await token(http, "sec-a"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "file", "reason": f"文件名过长，不能超过{MAX_FILE_NAME_CHARS}个字符"}
    ]


async def test_a_file_name_of_the_longest_length_is_kept_whole(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    name = "材" * (MAX_FILE_NAME_CHARS - len(".pdf")) + ".pdf"
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload(name),
        headers=await token(http, "sec-a"),
    )
    assert response.status_code == 201, response.text
    assert _stored_names(stack, round_id, response.json()["sha256"]) == [name]


async def test_a_file_name_with_a_direction_override_is_refused(
    http: httpx.AsyncClient, round_id: str
) -> None:
    # "x\u202egnp.pdf" is shown as "xfdp.png": a reader would not see what was uploaded.
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload("x\u202egnp.pdf"),
        headers=await token(http, "sec-a"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": "file", "reason": f"文件名{BIDI_REASON}"}]


async def test_evidence_text_with_a_direction_override_is_refused_naming_the_field(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    # The workflow's admission rule (domain.evidence.invisible_text_problems, validator only),
    # on a round of its own: the step must be open, whatever earlier tests did to org-a.
    round_id = await start_demo_round(stack, f"bidi-{uuid.uuid4().hex[:8]}")
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/submissions",
        json={
            "step_id": "set_up_leading_group",
            "values": {"leader": "张三\u202e", "members": ["李四", "王五"]},
        },
        headers=await token(http, "sec-a"),
    )
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["reason"] for e in response.json()["errors"]}
    assert errors["evidence.leader"].endswith(BIDI_REASON), errors
