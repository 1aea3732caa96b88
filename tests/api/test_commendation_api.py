"""评选表彰 over the real stack: declare, three assessors score independently (one outlier),
a tie at the quota line, 审定 with a struck and an added entry, publication on the public
page, the certificate PDF, idempotent retries and scope."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from pypdf import PdfReader

from activities.db import make_engine, session_factory
from api.auth import upsert_user
from domain.organisation import Role
from tests.api.conftest import PASSWORD, Stack, token

ASSESSORS = ("assess", "assess-2", "assess-3")
ITEMS = ("leadership", "membership", "mechanism", "performance", "public_opinion")  # 五个好
MEMBER_ITEMS = ("study", "achievement", "service", "discipline", "integrity")  # 五带头


def _add_assessors(stack: Stack) -> None:
    """Two more members of the assessment group (conftest has one)."""
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        for username in ASSESSORS[1:]:
            upsert_user(session, username=username, display_name=username, password=PASSWORD,
                        role=Role.ASSESSMENT_GROUP)  # fmt: skip
    engine.dispose()


def _scores(total: int, items: tuple[str, ...] = ITEMS) -> dict[str, int]:
    """Five items (max 20 each, weight 1 in the demo plan) adding up to ``total``."""
    base, extra = divmod(total, 5)
    return {item: base + (1 if i < extra else 0) for i, item in enumerate(items)}


async def _new_round(http: httpx.AsyncClient, county: dict[str, str]) -> str:
    rid = f"cm-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_id": "demo", "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text
    return rid


async def _declare(
    http: httpx.AsyncClient, rid: str, who: dict[str, str], body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        f"/api/v1/rounds/{rid}/commendation/declarations", json=body, headers=who | headers
    )


DEEDS = "带领党员群众发展特色产业，为民办实事二十余件。"


async def test_commendation_from_declaration_to_public_list_and_certificate(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    _add_assessors(stack)
    county = await token(http, "county")
    sec_a, sec_c = await token(http, "sec-a"), await token(http, "sec-c")
    township = await token(http, "tw-chengguan")
    assessors = [await token(http, name) for name in ASSESSORS]
    rid = await _new_round(http, county)
    base = f"/api/v1/rounds/{rid}/commendation"

    # Nothing is public before publication.
    assert (await http.get(f"/public/honours/{rid}")).status_code == 404
    assert (await http.get(f"{base}/honours", headers=county)).status_code == 404

    # ── 申报 ──────────────────────────────────────────────────────────────────────────
    org = "advanced_organisation"
    key = {"Idempotency-Key": f"declare-a-{rid}"}
    first = await _declare(http, rid, sec_a, {"category": org, "org_id": "org-a", "deeds": DEEDS},
                           **key)  # fmt: skip
    again = await _declare(http, rid, sec_a, {"category": org, "org_id": "org-a", "deeds": DEEDS},
                           **key)  # fmt: skip
    assert first.status_code == 201, first.text
    assert again.json()["declaration_id"] == first.json()["declaration_id"]
    assert first.json()["nominee"] == "城关镇东关村党支部"
    duplicate = await _declare(
        http, rid, sec_a, {"category": org, "org_id": "org-a", "deeds": DEEDS}
    )
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate"
    dec_b = await _declare(
        http, rid, township, {"category": org, "org_id": "org-b", "deeds": DEEDS}
    )
    dec_c = await _declare(http, rid, sec_c, {"category": org, "org_id": "org-c", "deeds": DEEDS})
    member = {
        "category": "outstanding_member",
        "org_id": "org-a",
        "nominee": "李明",
        "deeds": DEEDS,
    }
    dec_m = await _declare(http, rid, sec_a, member)
    assert (dec_b.status_code, dec_c.status_code, dec_m.status_code) == (201, 201, 201)
    ids = {
        "a": first.json()["declaration_id"],
        "b": dec_b.json()["declaration_id"],
        "c": dec_c.json()["declaration_id"],
        "m": dec_m.json()["declaration_id"],
    }

    no_name = await _declare(http, rid, sec_a, member | {"nominee": None})
    assert no_name.status_code == 422
    assert no_name.json()["errors"][0]["field"] == "nominee"
    assert "被推荐人姓名" in no_name.json()["errors"][0]["reason"]
    outside = await _declare(http, rid, sec_a, {"category": org, "org_id": "org-c", "deeds": DEEDS})
    assert outside.status_code == 404  # org-c is not sec-a's: it does not exist for them
    assert (
        await _declare(http, rid, county, {"category": org, "org_id": "org-c", "deeds": DEEDS})
    ).status_code == 403
    listed = await http.get(f"{base}/declarations", headers=sec_a)
    assert {d["declaration_id"] for d in listed.json()} == {ids["a"], ids["m"]}

    # ── 评分: three assessors, each on their own sheet ─────────────────────────────────
    def sheet(decl: str) -> str:
        return f"{base}/declarations/{decl}/sheets/mine"

    totals = {"a": (90, 88, 60), "b": (85, 85, 85), "c": (84, 85, 86), "m": (90, 91, 92)}
    draft = await http.put(
        sheet(ids["a"]), json={"scores": {"leadership": 18}}, headers=assessors[0]
    )
    assert draft.status_code == 200 and draft.json()["submitted"] is False
    too_high = await http.put(sheet(ids["a"]), json={"scores": {"leadership": 21}},
                              headers=assessors[0])  # fmt: skip
    assert too_high.status_code == 422
    assert too_high.json()["errors"] == [
        {"field": "scores.leadership", "reason": "领导班子好应在 0–20 分之间"}
    ]
    for decl, sheet_totals in totals.items():
        for who, total in zip(assessors, sheet_totals, strict=True):
            items = MEMBER_ITEMS if decl == "m" else ITEMS
            body = {"scores": _scores(total, items), "submit": True}
            saved = await http.put(sheet(ids[decl]), json=body, headers=who)
            assert saved.status_code == 200, saved.text
            assert saved.json()["total"] == str(total)
    locked = await http.put(sheet(ids["a"]), json={"scores": _scores(100)}, headers=assessors[0])
    assert locked.status_code == 409 and "已提交" in locked.json()["message"]
    mine = await http.get(sheet(ids["a"]), headers=assessors[1])
    assert mine.json()["assessor"] == "assess-2" and mine.json()["total"] == "88"

    # A secretary may not score: their own organisation's declaration is 403, another's 404.
    assert (await http.put(sheet(ids["a"]), json={"scores": {}}, headers=sec_a)).status_code == 403
    assert (await http.put(sheet(ids["c"]), json={"scores": {}}, headers=sec_a)).status_code == 404

    # ── 排名: per honour and system; the tie shares rank 1 across the quota line (1) ───
    assert (await http.get(f"{base}/ranking", headers=sec_a)).status_code == 403
    ranking = (await http.get(f"{base}/ranking", headers=county)).json()
    (orgs,) = [g for g in ranking["groups"] if g["category"] == org]
    assert orgs["system"] == "rural" and orgs["quota"] == 1 and orgs["over_quota_by_tie"]
    rows = [(e["declaration_id"], e["rank"], e["score"], e["proposed"]) for e in orgs["entries"]]
    assert rows == [
        (ids["b"], 1, "85.00", True),
        (ids["c"], 1, "85.00", True),
        (ids["a"], 3, "79.33", False),
    ]
    flagged = {s["assessor"]: s["outlier"] for s in orgs["entries"][2]["sheets"]}
    assert flagged == {"assess": False, "assess-2": False, "assess-3": True}

    # ── 审定: strike the tied c, add a; a missing reason is refused ─────────────────────
    no_reason = await http.post(
        f"{base}/approval",
        json={"meeting": "县委常委会第12次会议", "struck": [{"declaration_id": ids["c"]}]},
        headers=county,
    )
    assert no_reason.status_code == 422, no_reason.text
    assert {"field": "struck[0].reason", "reason": "取消入选必须说明理由"} in no_reason.json()[
        "errors"
    ]
    decision = {
        "meeting": "县委常委会第12次会议",
        "struck": [{"declaration_id": ids["c"], "reason": "并列超出名额，经审定暂缓表彰"}],
        "added": [{"declaration_id": ids["a"], "reason": "抗洪抢险中表现突出"}],
    }
    key = {"Idempotency-Key": f"approve-{rid}"}
    approved = await http.post(f"{base}/approval", json=decision, headers=county | key)
    replay = await http.post(f"{base}/approval", json=decision, headers=county | key)
    assert approved.status_code == 201, approved.text
    assert replay.json() == approved.json() and replay.headers.get("Idempotent-Replayed")
    assert (await http.post(f"{base}/approval", json=decision, headers=county)).status_code == 409
    assert [h["declaration_id"] for h in approved.json()["honours"]] == [
        ids["b"],
        ids["a"],
        ids["m"],
    ]
    # Approved lists freeze scoring and declaring; still nothing public.
    assert (
        await http.put(sheet(ids["c"]), json={"scores": _scores(100)}, headers=assessors[0])
    ).status_code == 409
    assert (await _declare(http, rid, sec_c, member | {"org_id": "org-c"})).status_code == 409
    assert (await http.get(f"/public/honours/{rid}")).status_code == 404

    # ── 公布 ─────────────────────────────────────────────────────────────────────────
    key = {"Idempotency-Key": f"publish-{rid}"}
    published = await http.post(f"{base}/publication", headers=county | key)
    assert published.status_code == 201, published.text
    assert (await http.post(f"{base}/publication", headers=county | key)).json() == published.json()
    assert (await http.post(f"{base}/publication", headers=county)).status_code == 409
    listed_honours = (await http.get(f"{base}/honours", headers=sec_c)).json()["honours"]
    assert [(h["nominee"], h["added"]) for h in listed_honours] == [
        ("城关镇西关社区党支部", False),
        ("城关镇东关村党支部", True),
        ("李明", False),
    ]

    public = await http.get(f"/public/honours/{rid}")  # no login
    assert public.status_code == 200
    assert "城关镇西关社区党支部" in public.text and "李明" in public.text
    assert "青石镇柳树村党支部" not in public.text  # struck at 审定
    index = await http.get("/public/honours")
    assert f"/public/honours/{rid}" in index.text

    # ── 证书 ─────────────────────────────────────────────────────────────────────────
    (li_ming,) = [h for h in listed_honours if h["nominee"] == "李明"]
    pdf = await http.get(li_ming["certificate"], headers=sec_a)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text().split())
    assert "荣誉证书" in text and "李明" in text and "优秀共产党员" in text
    assert li_ming["certificate_no"] in text
    assert (await http.get(li_ming["certificate"], headers=sec_c)).status_code == 404
    assert (await http.get(li_ming["certificate"])).status_code == 401
