"""Settings refuse what must not run: a weak secret key in production, and unknown ``CZ_*``
variables (an error in production, a warning elsewhere)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from chuangzheng.settings import (
    DEFAULT_SECRET_KEY,
    Settings,
    UnknownVariableWarning,
    check_environment,
    get_settings,
    unknown_variables,
)

STRONG = secrets.token_urlsafe(48)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("a", "1 characters"),
        ("x" * 64, "distinct"),
        ("ab" * 32, "distinct"),
        (secrets.token_hex(15), "30 characters"),
        (DEFAULT_SECRET_KEY, "development key"),
    ],
)
def test_production_refuses_a_weak_secret_key(key: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(environment="production", secret_key=key)


def test_production_accepts_a_random_key_and_development_any() -> None:
    assert Settings(environment="production", secret_key=STRONG).secret_key == STRONG
    assert Settings(environment="development", secret_key="a").secret_key == "a"


def test_unknown_variables_are_reported_and_known_ones_are_not(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text("mail:\n  password: env:CZ_MAIL_SECRET\n", "utf-8")
    environ = {
        "CZ_ENV": "production",  # the typo of CZ_ENVIRONMENT
        "CZ_SECRT_KEY": "x",
        "CZ_ENVIRONMENT": "production",
        "CZ_DATABASE_URL": "sqlite://",
        "CZ_WORKERS": "2",
        "CZ_API_URL": "http://127.0.0.1:8000",
        "CZ_API_USER": "county",
        "CZ_API_PASSWORD": "pw",
        "CZ_SIGNIN_ACCOUNT_FAILURES": "5",
        "CZ_OIDC_ISSUER": "",
        "CZ_CHANNELS_FILE": str(channels),
        "CZ_MAIL_SECRET": "pw",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == ["CZ_ENV", "CZ_SECRT_KEY"]
    production = Settings(environment="production", secret_key=STRONG)
    with pytest.raises(ValueError, match="CZ_ENV, CZ_SECRT_KEY"):
        check_environment(production, environ)
    with pytest.warns(UnknownVariableWarning, match="CZ_ENV"):
        check_environment(Settings(environment="development"), environ)
    check_environment(production, {"CZ_WORKERS": "1"})  # nothing unknown: silent


def test_the_process_settings_refuse_to_start_in_production_with_an_unknown_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [n for n in os.environ if n.startswith("CZ_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    monkeypatch.setenv("CZ_ENVIRONMENT", "production")
    monkeypatch.setenv("CZ_SECRET_KEY", STRONG)
    monkeypatch.setenv("CZ_ENV", "production")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="CZ_ENV"):
            get_settings()
        monkeypatch.delenv("CZ_ENV")
        monkeypatch.setenv("CZ_SECRET_KEY", "a")
        with pytest.raises(ValidationError, match="too weak"):
            get_settings()
        monkeypatch.setenv("CZ_SECRET_KEY", STRONG)
        assert get_settings().environment == "production"
    finally:
        get_settings.cache_clear()
