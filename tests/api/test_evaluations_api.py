"""群众评议 over the real stack (dev server, worker, uvicorn, SQLite and PostgreSQL): opening
with the composition rule, printable tokens, public casting with one vote per token, the
window, the quorum, ballot secrecy in every stored row, and the threshold opening a 整改通知.
"""

from __future__ import annotations

import io
import re
import uuid
from datetime import date, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pypdf import PdfReader
from sqlalchemy import select

from activities.db import make_engine
from activities.evaluations import token_hash
from activities.tables import metadata
from domain.evaluation_rules import FIVE_GOODS, FIVE_LEADS
from tests.api.conftest import Stack, start_demo_round, token, wait_for
from tests.api.test_evaluation_guards import reach_public_evaluation

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN_IN_URL = re.compile(r"/ballot/([A-Za-z0-9_\-]{22})\b")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def eval_round(stack: Stack) -> str:
    """A demo round of our own, so its phase is still open (minute-scale plan), with every
    organisation moved on to 群众评议 (the only phase an evaluation is opened in)."""
    rid = await start_demo_round(stack, f"ev-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await reach_public_evaluation(http, rid)
    return rid


async def open_ballot(
    http: httpx.AsyncClient, round_id: str, user: str, body: dict[str, Any], org: str = "org-a"
) -> httpx.Response:
    return await http.post(
        f"/api/v1/rounds/{round_id}/organisations/{org}/evaluations",
        json=body,
        headers=await token(http, user),
    )


async def printed_tokens(http: httpx.AsyncClient, evaluation_id: str, user: str) -> list[str]:
    page = await http.get(
        f"/api/v1/evaluations/{evaluation_id}/tokens", headers=await token(http, user)
    )
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store" and "<svg" in page.text
    return list(dict.fromkeys(TOKEN_IN_URL.findall(page.text)))


async def cast(
    http: httpx.AsyncClient, ballot_token: str, rating: str, items: Any = FIVE_GOODS
) -> httpx.Response:
    form = {"token": ballot_token} | {item.id: rating for item in items}
    return await http.post("/ballot", data=form)


async def close_and_wait(http: httpx.AsyncClient, evaluation_id: str, user: str) -> dict[str, Any]:
    headers = await token(http, user)
    closed = await http.post(f"/api/v1/evaluations/{evaluation_id}/close", headers=headers)
    assert closed.status_code == 202, closed.text

    async def settled() -> dict[str, Any] | None:
        view = (await http.get(f"/api/v1/evaluations/{evaluation_id}", headers=headers)).json()
        return view if view["status"] in ("published", "invalid") else None

    result: dict[str, Any] = await wait_for(settled)
    return result


ORG_RATERS = {"raters": {"member": 8, "non_member": 4}}


async def test_composition_rule_and_who_may_open(http: httpx.AsyncClient, eval_round: str) -> None:
    too_few_public = await open_ballot(
        http, eval_round, "tw-chengguan", {"raters": {"member": 9, "non_member": 3}}
    )
    assert too_few_public.status_code == 422, too_few_public.text
    body = too_few_public.json()
    assert body["code"] == "invalid_composition"
    assert body["errors"][0]["field"] == "raters.non_member"
    assert "不得少于 33%" in body["errors"][0]["reason"]
    names = [{"name": f"党员{i}", "kind": "member"} for i in range(8)]
    names += [{"name": "群众甲", "kind": "non_member"}]
    by_names = await open_ballot(http, eval_round, "tw-chengguan", {"rater_names": names})
    assert by_names.status_code == 422
    assert {e["field"] for e in by_names.json()["errors"]} == {
        "rater_names",
        "rater_names.non_member",
    }
    duplicate = names[:1] * 2
    refused = await open_ballot(http, eval_round, "tw-chengguan", {"rater_names": duplicate})
    assert refused.json()["errors"][0] == {"field": "rater_names[1].name", "reason": "姓名重复"}
    # A secretary may not evaluate their own organisation; outside scope is a 404.
    assert (await open_ballot(http, eval_round, "sec-a", ORG_RATERS)).status_code == 403
    assert (await open_ballot(http, eval_round, "ins-liu", ORG_RATERS)).status_code == 404


async def test_single_use_window_and_secrecy(
    http: httpx.AsyncClient, eval_round: str, stack: Stack
) -> None:
    opened = await open_ballot(http, eval_round, "ins-zhang", ORG_RATERS)
    assert opened.status_code == 201, opened.text
    view = opened.json()
    evaluation_id = view["evaluation_id"]
    assert view["status"] == "open" and view["issued"] == {"member": 8, "non_member": 4}
    # The same subject cannot have two live ballots.
    again = await open_ballot(http, eval_round, "ins-zhang", ORG_RATERS)
    assert again.status_code == 409
    tokens = await printed_tokens(http, evaluation_id, "ins-zhang")
    assert len(tokens) == 12
    pdf = await http.get(
        f"/api/v1/evaluations/{evaluation_id}/tokens?format=pdf",
        headers=await token(http, "ins-zhang"),
    )
    assert pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "凭证号" in text and tokens[0] in text.replace("\n", "")
    # The ballot page lists the 五个好 items; a ballot rates every one.
    page = await http.get(f"/ballot/{tokens[0]}")
    assert page.status_code == 200 and all(item.label in page.text for item in FIVE_GOODS)
    incomplete = await http.post("/ballot", data={"token": tokens[0], "leadership": "satisfied"})
    assert incomplete.status_code == 422 and "请评价“党员队伍好”" in incomplete.text
    for ballot_token in tokens[:9]:
        assert (await cast(http, ballot_token, "satisfied")).status_code == 303
    second = await cast(http, tokens[0], "unsatisfied")
    assert second.status_code == 409 and "已经投过票" in second.text
    assert "已经投过票" in (await http.get(f"/ballot/{tokens[0]}")).text
    assert (await cast(http, "A" * 22, "satisfied")).status_code == 404
    final = await close_and_wait(http, evaluation_id, "ins-zhang")
    assert final["status"] == "published" and final["verdict"] == "satisfactory"
    assert final["result"]["cast"] == 9
    # After the close: casting refused, printing refused, results public.
    late = await cast(http, tokens[10], "satisfied")
    assert late.status_code == 409 and "已截止" in late.text
    printing = await http.get(
        f"/api/v1/evaluations/{evaluation_id}/tokens", headers=await token(http, "ins-zhang")
    )
    assert printing.status_code == 409
    results = await http.get(f"/ballot/results/{evaluation_id}")
    assert results.status_code == 200 and "领导班子好" in results.text and "达标" in results.text
    assert_secret(stack, evaluation_id, tokens)


def assert_secret(stack: Stack, evaluation_id: str, tokens: list[str]) -> None:
    """Inspect every row of every table: nothing ties a ballot to its token or holder."""
    tables = {t.name: t for t in metadata.sorted_tables}
    ballots_t, tokens_t = tables["ballots"], tables["ballot_tokens"]
    # The ballot table has no token, rater, holder or time column; the token table no
    # ballot, holder or time column.
    assert set(ballots_t.c.keys()) == {"ballot_id", "evaluation_id", "ratings"}
    assert set(tokens_t.c.keys()) == {"token_hash", "evaluation_id", "rater_kind", "used"}
    hashes = {token_hash(t) for t in tokens}
    engine = make_engine(stack.settings.database_url)
    try:
        with engine.connect() as connection:
            ballots = connection.execute(
                select(ballots_t).where(ballots_t.c.evaluation_id == evaluation_id)
            ).all()
            assert len(ballots) == 9
            ballot_ids = {b.ballot_id for b in ballots}
            assert all(re.fullmatch(r"[0-9a-f]{32}", b) for b in ballot_ids)
            for ballot in ballots:
                assert not any(isinstance(v, datetime | date) for v in ballot)
                assert set(ballot.ratings) == {i.id for i in FIVE_GOODS}
            used = connection.execute(
                select(tokens_t).where(tokens_t.c.evaluation_id == evaluation_id)
            ).all()
            assert {r.token_hash for r in used} == hashes
            assert sum(r.used for r in used) == 9
            # No stored row anywhere holds a plaintext token, and no row holds both a
            # ballot id and a token hash.
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)).all():
                    text = " ".join(str(v) for v in row)
                    assert not any(t in text for t in tokens), table.name
                    if any(b in text for b in ballot_ids):
                        assert not any(h in text for h in hashes), table.name
    finally:
        engine.dispose()


async def test_quorum_below_two_thirds_voids_the_result(
    http: httpx.AsyncClient, eval_round: str
) -> None:
    opened = await open_ballot(http, eval_round, "tw-chengguan", ORG_RATERS, org="org-b")
    assert opened.status_code == 201, opened.text
    evaluation_id = opened.json()["evaluation_id"]
    tokens = await printed_tokens(http, evaluation_id, "tw-chengguan")
    for ballot_token in tokens[:7]:  # 7 of 12 < 2/3
        assert (await cast(http, ballot_token, "unsatisfied")).status_code == 303
    final = await close_and_wait(http, evaluation_id, "tw-chengguan")
    assert final["status"] == "invalid" and final["valid"] is False
    assert final["verdict"] == "no_quorum" and final["rectification"] is None
    assert (await http.get(f"/ballot/results/{evaluation_id}")).status_code == 404
    status = await http.get(
        f"/api/v1/rounds/{eval_round}/organisations/org-b/status",
        headers=await token(http, "county"),
    )
    phases = {p["phase"]: p for p in status.json()["state"]["phases"]}
    assert phases["public_evaluation"]["rectification"] is None
    # A void evaluation may be run again.
    rerun = await open_ballot(http, eval_round, "tw-chengguan", ORG_RATERS, org="org-b")
    assert rerun.status_code == 201 and rerun.json()["seq"] == 2


async def test_low_satisfaction_opens_a_rectification_order(
    http: httpx.AsyncClient, eval_round: str
) -> None:
    opened = await open_ballot(http, eval_round, "gg-rural", ORG_RATERS, org="org-c")
    assert opened.status_code == 201, opened.text
    evaluation_id = opened.json()["evaluation_id"]
    tokens = await printed_tokens(http, evaluation_id, "gg-rural")
    for index, ballot_token in enumerate(tokens[:10]):
        rating = "fairly_satisfied" if index < 5 else "basically_satisfied"
        assert (await cast(http, ballot_token, rating)).status_code == 303
    final = await close_and_wait(http, evaluation_id, "gg-rural")
    assert final["verdict"] == "below_threshold" and final["rectification"] == "ordered"
    assert final["result"]["satisfaction"] == pytest.approx(0.5)
    county = await token(http, "county")
    status = await http.get(
        f"/api/v1/rounds/{eval_round}/organisations/org-c/status", headers=county
    )
    state = status.json()["state"]
    current = next(p for p in state["phases"] if p["phase"] == state["phase"])
    assert current["rectification"]["status"] == "issued"
    timeline = await http.get(
        f"/api/v1/rounds/{eval_round}/organisations/org-c/timeline", headers=county
    )
    ordered = [e for e in timeline.json() if e["kind"].startswith("rectification_")]
    assert ordered and ordered[-1]["detail"]["reference"] == evaluation_id
    assert "50.0%" in ordered[-1]["detail"]["reason"]


async def test_an_organisation_evaluates_a_member_on_the_five_leads(
    http: httpx.AsyncClient, eval_round: str
) -> None:
    opened = await open_ballot(
        http, eval_round, "sec-a",
        {"target": "member", "member": "张三", "raters": {"member": 4, "non_member": 1}},
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    view = opened.json()
    assert view["subject"] == "张三" and view["target"] == "member"
    tokens = await printed_tokens(http, view["evaluation_id"], "sec-a")
    page = await http.get(f"/ballot/{tokens[0]}")
    assert all(item.label in page.text for item in FIVE_LEADS) and "领导班子好" not in page.text
    for ballot_token in tokens:
        assert (await cast(http, ballot_token, "satisfied", FIVE_LEADS)).status_code == 303
    final = await close_and_wait(http, view["evaluation_id"], "sec-a")
    assert final["status"] == "published" and final["verdict"] == "satisfactory"
