"""``record_events`` reads the stored status rows of a group's status changes by primary key.

The row value ``(round_id, org_id) IN ((…), …)`` it used before made SQLite scan the whole
``campaign_status`` table once per group commit (docs/performance.md, "Storm at 2,000,
session 7"). The lookup now asks ``round_id = :r AND org_id IN (…)`` per round: each key
still finds its own round's row (the same organisation in two rounds), and on SQLite the
plan is a search of the primary key, not a scan.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from activities.contracts import EventBatch, StatusChange
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities, _stored_status
from domain.events import EventKind
from domain.lights import Light
from tests.activities.test_channels import ORG, ROUND
from tests.activities.test_small_inputs import event, snapshot, status_row

OTHER_ROUND = f"{ROUND}-b"


async def _seed(sessions: sessionmaker[Session]) -> RecordingActivities:
    """``ORG`` in two rounds (its township differs in the second) and a second org."""
    activities = RecordingActivities(sessions, InboxNotifier(sessions))
    first = snapshot(1)
    other_round = snapshot(1).model_copy(update={"round_id": OTHER_ROUND, "township": "另一镇"})
    second_org = snapshot(1, org_id="org-2")
    for snap in (first, other_round, second_org):
        opened = event(1, EventKind.PHASE_OPENED, org_id=snap.org_id).model_copy(
            update={"round_id": snap.round_id, "event_id": f"{snap.round_id}/{snap.org_id}/1"}
        )
        await activities.record_events(EventBatch(events=[opened], snapshot=snap))
    return activities


async def test_each_key_finds_its_own_rounds_row(sessions: sessionmaker[Session]) -> None:
    await _seed(sessions)
    keys = {(ROUND, ORG.id), (OTHER_ROUND, ORG.id), (ROUND, "org-2"), (ROUND, "nobody")}
    with sessions() as session:
        found = _stored_status(session, keys)
    assert set(found) == {(ROUND, ORG.id), (OTHER_ROUND, ORG.id), (ROUND, "org-2")}
    assert found[(ROUND, ORG.id)].township == ORG.township
    assert found[(OTHER_ROUND, ORG.id)].township == "另一镇"
    assert found[(ROUND, "org-2")].system == ORG.system


async def test_status_changes_of_two_rounds_in_one_group_land_on_their_own_rows(
    sessions: sessionmaker[Session],
) -> None:
    activities = await _seed(sessions)
    red = StatusChange.between(snapshot(1), snapshot(2, light=Light.RED))
    other = StatusChange.between(
        snapshot(1), snapshot(2, light=Light.YELLOW).model_copy(update={"round_id": OTHER_ROUND})
    )
    assert other.round_id == OTHER_ROUND
    # Concurrent calls: written together by the group commit, one lookup for both rounds.
    await asyncio.gather(
        activities.record_events(EventBatch(events=[], status=red)),
        activities.record_events(EventBatch(events=[], status=other)),
    )
    row = status_row(sessions)
    assert row is not None and (row.light, row.event_seq) == ("red", 2)
    with sessions() as session:
        light, township = session.execute(
            text("SELECT light, township FROM campaign_status WHERE round_id = :r AND org_id = :o"),
            {"r": OTHER_ROUND, "o": ORG.id},
        ).one()
    assert (light, township) == ("yellow", "另一镇")


async def test_the_lookup_searches_the_primary_key_on_sqlite(
    sessions: sessionmaker[Session],
) -> None:
    await _seed(sessions)
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return  # the plan below is SQLite's; PostgreSQL's planner decides by statistics
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM campaign_status" in statement:
            seen.append((statement, params))

    sa_event.listen(engine, "before_cursor_execute", capture)
    try:
        with sessions() as session:
            _stored_status(session, {(ROUND, ORG.id), (ROUND, "org-2"), (OTHER_ROUND, ORG.id)})
    finally:
        sa_event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 2  # one statement per round
    with engine.connect() as conn:
        for statement, params in seen:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            assert "SEARCH campaign_status USING INDEX" in plan, plan
            assert "SCAN campaign_status" not in plan, plan
