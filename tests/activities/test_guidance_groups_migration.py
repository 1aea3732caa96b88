"""Migration 0011 (issue 15): the ``systems`` table becomes per county and every county that
exists, the default one included, gets seed 002's six guidance groups; going back restores
the old shape with the six. On an empty SQLite file, as ``test_migrations`` builds it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect, text

from tests.activities.test_migrations import alembic_config

SIX = ["rural", "organs", "education", "non_public", "social", "health"]


def test_every_county_gets_the_six_and_downgrade_restores_the_old_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0010")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO counties (code, name, created_at) VALUES ('yixian', '乙县', :t)"),
                {"t": "2026-01-01 00:00:00+00:00"},
            )
        command.upgrade(config, "0011")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT county, key, name, department FROM systems ORDER BY county, position")
            ).all()
        by_county: dict[str, list[str]] = {}
        for county, key, _, _ in rows:
            by_county.setdefault(county, []).append(key)
        assert by_county == {"default": SIX, "yixian": SIX}
        assert ("default", "rural", "农村基层组织指导小组", "县农委") in rows
        command.downgrade(config, "0010")
        columns = {c["name"] for c in inspect(engine).get_columns("systems")}
        assert columns == {"key", "label"}
        with engine.connect() as connection:
            found = connection.execute(text("SELECT key, label FROM systems")).all()
            labels = {str(key): str(label) for key, label in found}
        assert labels["rural"] == "农村基层组织指导小组（县农委）" and len(labels) == 6
    finally:
        engine.dispose()
