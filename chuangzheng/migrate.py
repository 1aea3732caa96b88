"""Bring a database to the newest schema with Alembic (used by ``make run`` and the CLI)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from chuangzheng.settings import repo_root


def upgrade(database_url: str) -> None:
    """``alembic upgrade head`` on ``database_url``."""
    config = Config(str(repo_root() / "alembic.ini"))
    config.set_main_option("script_location", str(repo_root() / "migrations"))
    # Percent signs in URLs (encoded passwords) would be read as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")
