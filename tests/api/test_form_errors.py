"""Refusals as users read them, over the real stack (dev server + worker + uvicorn; SQLite and
PostgreSQL): Chinese reasons naming fields by their Chinese labels, each said once; forms
that keep what was typed; file references and member commitments checked against the read
model before the workflow's Update, on the pages and on the JSON API alike; supervision
records not dated in the future.

One round of a small uploaded plan; org-b's secretary (an account of this module) submits,
its instructor ins-zhang decides. The member list imported here is org-b's only.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from activities.db import make_engine, session_factory
from api.auth import upsert_user
from chuangzheng.services.field_errors import field_errors, reason
from domain.calendar import local_date
from domain.organisation import Role
from tests.api.conftest import PASSWORD, Stack, reach_phase, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

ORG = "org-b"
SECRETARY = "sec-b-form-errors"
MEMBERS = [(f"B{n:03d}", f"党员乙{n:02d}号") for n in range(1, 26)]  # org-b has 25 members

# Long minute spans: nothing escalates while the tests run. The meeting's minutes are an
# optional document, the date must fall within the phase.
PLAN_YAML = """
id: form-errors-test
name: 表单错误测试计划
ladder:
  reminder_lead: {minutes: 1}
  blue_within: {minutes: 2}
  rungs:
    - {name: 指导员督促, recipient: instructor, delay: {minutes: 0}}
    - {name: 县委通报, recipient: county_office, delay: {minutes: 5},
       actions: [notify, circular, rectification_order]}
  rectification_period: {minutes: 30}
rounds:
  - id: r1
    name: 表单错误测试轮次
    starts_on: 2025-01-06
    phases:
      - phase: mobilisation
        duration: {minutes: 600}
        steps:
          - id: hold_meeting
            name: 召开动员大会
            evidence:
              - {name: meeting_date, label: 会议日期, kind: date, within_phase: true}
              - {name: note, label: 会议情况, kind: text}
              - {name: minutes, label: 会议记录, kind: document, required: false}
      - phase: public_commitment
        duration: {minutes: 600}
        steps:
          - id: member_commitments
            name: 党员承诺
            evidence:
              - {name: commitments, label: 党员承诺事项, kind: member_commitments,
                 coverage_of_members: 0.05}
      - phase: leadership_review
        duration: {minutes: 600}
        steps: [{id: review, name: 点评, evidence: [{name: note, label: 点评, kind: text}]}]
      - phase: public_evaluation
        duration: {minutes: 600}
        steps: [{id: evaluate, name: 评议, evidence: [{name: note, label: 评议, kind: text}]}]
      - phase: commendation
        duration: {minutes: 600}
        steps: [{id: declare, name: 申报, evidence: [{name: note, label: 申报, kind: text}]}]
"""

FORGED = "a" * 64


def today() -> str:
    return local_date(datetime.now(UTC)).isoformat()


def in_days(days: int) -> str:
    return (local_date(datetime.now(UTC)) + timedelta(days=days)).isoformat()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rid(stack: Stack) -> str:
    """A round of the test plan, kicked off, with a secretary account for org-b."""
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        upsert_user(
            session, username=SECRETARY, display_name="王芳", password=PASSWORD,
            role=Role.SECRETARY, scope_key=ORG,
        )  # fmt: skip
    engine.dispose()
    round_id = f"fe-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_id, "plan_yaml": PLAN_YAML, "round_plan_id": "r1"},
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text

        async def started() -> bool:
            status = await http.get(f"{api_base(round_id)}/status", headers=county)
            return status.status_code == 200

        await wait_for(started)
    return round_id


def api_base(rid: str) -> str:
    return f"/api/v1/rounds/{rid}/organisations/{ORG}"


async def _signed_in(stack: Stack, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    )
    answer = await client.post(
        "/ui/login", data={"username": username, "password": PASSWORD, "next": "/ui/"}
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest_asyncio.fixture(loop_scope="session")
async def secretary(stack: Stack, rid: str) -> AsyncIterator[httpx.AsyncClient]:
    client = await _signed_in(stack, SECRETARY)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def county(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    client = await _signed_in(stack, "county")
    yield client
    await client.aclose()


def flash(page: httpx.Response) -> str:
    """The page's error line (however it got there: a redirect's query or a re-render)."""
    found = re.search(r'class="flash err" role="alert">(.*?)</p>', page.text, re.S)
    assert found is not None, page.text[:2000]
    return found.group(1)


def no_internal_names(text: str, *names: str) -> None:
    assert "Input should" not in text and "Value error" not in text, text
    for name in names:
        assert name not in text, text


async def _meeting_form(client: httpx.AsyncClient, rid: str, **fields: Any) -> httpx.Response:
    data = {"round": rid, "step_id": "hold_meeting", "form_key": uuid.uuid4().hex} | fields
    return await client.post("/ui/my/submit", data=data, follow_redirects=True)


# --- one translation -------------------------------------------------------------------------


async def test_unknown_pydantic_errors_never_reach_users_in_english() -> None:
    assert reason({"type": "some_future_type", "msg": "Input should be nice"}) == "取值无效"
    assert reason({"type": "value_error", "msg": "Value error, 日期不对"}) == "日期不对"
    assert reason({"type": "value_error", "msg": "Value error, bad"}) == "取值无效"
    assert (
        reason({"type": "less_than_equal", "msg": "x", "ctx": {"le": 60}}) == "数值过大，最大为 60"
    )


async def test_services_name_the_field_by_its_description() -> None:
    from pydantic import BaseModel, Field, ValidationError

    class Form(BaseModel):
        share: float = Field(gt=0, le=1, description="抽查比例")

    with pytest.raises(ValidationError) as caught:
        Form.model_validate({"share": "abc"})
    assert field_errors(caught.value, Form) == [{"field": "share", "reason": "抽查比例：应为数字"}]


async def test_supervision_forms_say_what_is_wrong_in_chinese(
    county: httpx.AsyncClient, rid: str
) -> None:
    base = {"round": rid, "stratify_by": "none"}
    word = await county.post(
        "/ui/supervision/draws",
        data=base | {"size_kind": "count", "size": "abc", "form_key": uuid.uuid4().hex},
        follow_redirects=True,
    )
    text = flash(word)
    assert "抽查数量：应为整数" in text
    no_internal_names(text, "count：", "count:")
    share = await county.post(
        "/ui/supervision/draws",
        data=base | {"size_kind": "share", "size": "1.5", "form_key": uuid.uuid4().hex},
        follow_redirects=True,
    )
    assert "抽查比例（0–1）：数值过大，最大为 1" in flash(share)
    no_internal_names(flash(share), "share：")
    period = await county.post(
        f"/ui/orgs/{ORG}/rectification-orders",
        data={"round": rid, "ground": "not_taken_seriously", "reason": "思想上不重视，限期整改",
              "period_working_days": "61", "form_key": uuid.uuid4().hex},
        follow_redirects=True,
    )  # fmt: skip
    assert "整改期限（工作日）：数值过大，最大为 60" in flash(period)
    no_internal_names(flash(period), "period_working_days")


async def test_supervision_record_in_the_future_is_refused(
    county: httpx.AsyncClient, http: httpx.AsyncClient, rid: str
) -> None:
    record = {"round": rid, "kind": "symposium", "held_on": "2030-01-01", "title": "座谈会",
              "supervisors": "赵书记", "org_ids": ORG, "findings": "会议记录不完整",
              "form_key": uuid.uuid4().hex}  # fmt: skip
    page = await county.post("/ui/supervision/records", data=record, follow_redirects=True)
    assert "日期：不能晚于今天" in flash(page)
    # Not recorded, so not listed; the form shows it again as typed, to be corrected.
    assert "2030-01-01" not in page.text.split('class="list records"')[1]
    assert 'value="2030-01-01"' in page.text
    body = {"kind": "symposium", "held_on": "2030-01-01", "title": "座谈会",
            "supervisors": ["赵书记"], "org_ids": [ORG], "findings": "会议记录不完整"}  # fmt: skip
    headers = await token(http, "county")
    refused = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records", json=body, headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "held_on"
    kept = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=body | {"held_on": today()},
        headers=headers,
    )
    assert kept.status_code == 201, kept.text


# --- the secretary's evidence form -----------------------------------------------------------


async def test_each_reason_once_by_label_and_the_typed_values_kept(
    secretary: httpx.AsyncClient, rid: str
) -> None:
    typed = "全体党员参加了动员大会，会上传达了县委精神（这段话不应丢失）"
    answer = await _meeting_form(
        secretary, rid, **{"ev.meeting_date": "2020-01-01", "ev.note": typed}
    )
    assert answer.status_code == 422, answer.text[:500]
    text = flash(answer)
    assert text.count("会议日期应在本阶段期间") == 1, text
    no_internal_names(text, "evidence.", "meeting_date")
    # What was typed is on the form again.
    assert typed in answer.text and 'value="2020-01-01"' in answer.text


async def test_forged_or_malformed_file_reference_is_a_field_error(
    secretary: httpx.AsyncClient, http: httpx.AsyncClient, rid: str
) -> None:
    fields = {"ev.meeting_date": today(), "ev.note": "全体党员参加动员大会"}
    forged = await _meeting_form(
        secretary, rid, **fields,
        **{"ev.minutes.previous": f'{{"name": "x.pdf", "sha256": "{FORGED}"}}'},
    )  # fmt: skip
    assert forged.status_code == 422, forged.text[:500]
    assert "会议记录：文件尚未上传" in flash(forged)
    malformed = await _meeting_form(secretary, rid, **fields, **{"ev.minutes.previous": "{bad"})
    assert malformed.status_code == 422, malformed.text[:500]
    assert "会议记录：原文件信息无效" in flash(malformed)
    assert "全体党员参加动员大会" in malformed.text  # typed values kept here too

    # The JSON API refuses the same reference; another organisation's file is no better.
    secretary_api = await token(http, SECRETARY)
    values = {"meeting_date": today(), "note": "全体党员参加动员大会"}
    api = await http.post(
        f"{api_base(rid)}/submissions",
        json={"step_id": "hold_meeting", "values": values | {"minutes": {"name": "x.pdf",
              "sha256": FORGED}}},
        headers=secretary_api,
    )  # fmt: skip
    assert api.status_code == 422, api.text
    assert api.json()["errors"] == [
        {"field": "evidence.minutes", "reason": "文件尚未上传，请先通过 files 接口上传"}
    ]
    elsewhere = await http.post(
        f"/api/v1/rounds/{rid}/organisations/org-a/files",
        files={"file": ("记录.txt", "org-a 的会议记录".encode(), "text/plain")},
        headers=await token(http, "sec-a"),
    )
    assert elsewhere.status_code == 201, elsewhere.text
    other = await http.post(
        f"{api_base(rid)}/submissions",
        json={"step_id": "hold_meeting", "values": values | {"minutes": elsewhere.json()}},
        headers=secretary_api,
    )
    assert other.status_code == 422 and other.json()["code"] == "invalid_evidence", other.text


async def test_a_file_uploaded_here_is_accepted_and_the_phase_moves_on(
    secretary: httpx.AsyncClient, http: httpx.AsyncClient, rid: str
) -> None:
    content = f"会议记录 {uuid.uuid4()}".encode()
    uploaded = await http.post(
        f"{api_base(rid)}/files",
        files={"file": ("记录.txt", content, "text/plain")},
        headers=await token(http, SECRETARY),
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["sha256"] == hashlib.sha256(content).hexdigest()
    reference = f'{{"name": "记录.txt", "sha256": "{uploaded.json()["sha256"]}"}}'
    accepted = await _meeting_form(
        secretary, rid,
        **{"ev.meeting_date": today(), "ev.note": "全体党员参加", "ev.minutes.previous": reference},
    )  # fmt: skip
    assert accepted.status_code == 200 and "已提交" in accepted.text, accepted.text[:2000]
    decided = await http.post(
        f"{api_base(rid)}/decisions",
        json={"step_id": "hold_meeting", "accept": True},
        headers=await token(http, "ins-zhang"),
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["result"]["phase"] == "public_commitment"


# --- member commitments ----------------------------------------------------------------------


async def _import_members(http: httpx.AsyncClient) -> None:
    rows = "".join(f"{ORG},{name},{member_id}\n" for member_id, name in MEMBERS)
    imported = await http.post(
        "/api/v1/members/import",
        files={"file": ("members.csv", f"组织编号,党员姓名,党员编号\n{rows}".encode(), "text/csv")},
        headers=await token(http, "county"),
    )
    assert imported.status_code == 200, imported.text


async def test_member_commitments_name_rostered_members_due_within_the_phase(
    secretary: httpx.AsyncClient, http: httpx.AsyncClient, rid: str
) -> None:
    # Whether or not the test before it accepted the meeting: this test stands alone.
    await reach_phase(http, rid, "public_commitment", (ORG,))
    await _import_members(http)

    async def commit(lines: str) -> httpx.Response:
        data = {"round": rid, "step_id": "member_commitments", "form_key": uuid.uuid4().hex,
                "ev.commitments": lines}  # fmt: skip
        return await secretary.post("/ui/my/submit", data=data, follow_redirects=True)

    strangers = "\n".join(f"不存在的党员{n}|承诺{n}|{in_days(30)}" for n in range(1, 4))
    refused = await commit(strangers)
    assert refused.status_code == 422, refused.text[:500]
    assert "第1条的承诺人“不存在的党员1”不在本组织党员名册中" in flash(refused)
    assert "不存在的党员3|承诺3" in refused.text  # the 3 lines are on the form again

    early = await commit(f"{MEMBERS[0][1]}|带头服务群众|2020-01-01")
    assert early.status_code == 422, early.text[:500]
    assert "第1条的兑现日期 2020-01-01 早于本阶段开始日期" in flash(early)

    api = await http.post(
        f"{api_base(rid)}/submissions",
        json={"step_id": "member_commitments", "values": {"commitments": [
            {"member": "不存在的党员1", "content": "承诺", "due": in_days(30)}]}},
        headers=await token(http, SECRETARY),
    )  # fmt: skip
    assert api.status_code == 422 and api.json()["code"] == "invalid_evidence", api.text

    good = "\n".join(f"{name}|带头服务群众|{in_days(30)}" for _, name in MEMBERS[:2])
    accepted = await commit(good)
    assert accepted.status_code == 200 and "“党员承诺”已提交" in accepted.text, accepted.text[:2000]


# --- other forms -----------------------------------------------------------------------------


async def test_extension_without_reason_says_it_once(
    secretary: httpx.AsyncClient, rid: str
) -> None:
    page = await secretary.post(
        f"/ui/orgs/{ORG}/act",
        data={"round": rid, "action": "request_extension", "form_key": uuid.uuid4().hex,
              "back": f"/ui/my?round={rid}", "new_deadline": f"{in_days(3)}T18:00", "reason": " "},
        follow_redirects=True,
    )  # fmt: skip
    text = flash(page)
    assert text.count("必须填写理由") == 1, text
    no_internal_names(text, "reason")


async def test_account_creation_refusal_shows_the_form_as_typed(
    county: httpx.AsyncClient, stack: Stack
) -> None:
    username = f"fe-{uuid.uuid4().hex[:8]}"
    page = await county.post(
        "/ui/accounts",
        data={"username": username, "display_name": "某某书记", "role": "secretary",
              "scope_key": "no-such-org", "form_key": uuid.uuid4().hex},
    )  # fmt: skip
    assert page.status_code in (409, 422), page.text[:500]
    assert 'id="create-account"' in page.text  # the form, not a dead end
    assert f'value="{username}"' in page.text and 'value="某某书记"' in page.text
    assert 'value="no-such-org"' in page.text
    no_internal_names(flash(page), "scope_key")
