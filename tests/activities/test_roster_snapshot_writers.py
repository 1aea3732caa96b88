"""A round's roster snapshot written by several writers at once (two kick-offs of one round):
each writes a temporary file of its own and renames it into place, so none fails on another's
temporary name (a fixed ``.tmp`` was renamed away under the second writer), a reader always
finds a whole file, and no temporary file is left behind."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_text
from activities.roster_store import store_roster, write_roster_snapshot

ROSTER = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
s-1,城关镇东关村党支部,农村,城关镇,县农委,42,李明,张指导
s-2,青石镇柳树村党支部,农村,青石镇,县农委,18,赵强,刘指导
"""


def test_writers_of_one_snapshot_at_once_never_fail(tmp_sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(tmp_sqlite_url)
    create_schema(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        store_roster(session, read_roster_text(ROSTER))
    alone = tmp_path / "alone.csv"
    with sessions() as session:
        expected = write_roster_snapshot(session, alone).read_text(encoding="utf-8")
    assert "s-1" in expected and "s-2" in expected
    target = tmp_path / "rosters" / "round-1.csv"

    def write(_: int) -> str:
        with sessions() as session:
            write_roster_snapshot(session, target)
        return target.read_text(encoding="utf-8")  # a whole file, whoever renamed last

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(write, range(32)))
    engine.dispose()
    assert set(seen) == {expected}
    assert [p.name for p in target.parent.iterdir()] == ["round-1.csv"]
