from __future__ import annotations

from pathlib import Path

import pytest

from proca_server.config import ConfigError, Settings, normalize_database_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_get_an_async_driver(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://h/db", "nonsense"])
def test_unsupported_database_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_database_url(bad)


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "AMQP_URL", "ORG_NAME", "PORT", "CORS_ALLOW_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROCA_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'proca.db'}"
    assert s.amqp_url is None
    assert s.org_name == "instance"
    assert s.port == 4000
    assert s.cors_origins == ["*"]


def test_environment_names_of_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORG_NAME", "hq")
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://a.org, https://b.org")
    monkeypatch.setenv("AMQP_URL", "")
    s = Settings()
    assert s.org_name == "hq"
    assert s.cors_origins == ["https://a.org", "https://b.org"]
    assert s.amqp_url is None


def test_production_refuses_missing_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCA_ENV", "prod")
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/db")
    monkeypatch.delenv("SECRET_KEY_BASE", raising=False)
    monkeypatch.delenv("FINGERPRINT_SEED", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY_BASE, FINGERPRINT_SEED"):
        Settings().check()
    monkeypatch.setenv("SECRET_KEY_BASE", "x" * 64)
    monkeypatch.setenv("FINGERPRINT_SEED", "seed")
    Settings().check()


def test_an_invalid_setting_is_named_with_what_is_wrong_and_never_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proca_server.config import get_settings

    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("PIPELINE", "bogus")
    monkeypatch.setenv("MTT_CYCLE_SECONDS", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(caught.value)
    assert "\n" not in message
    assert "PORT: Input should be a valid integer" in message
    assert "PIPELINE: Input should be 'embedded', 'handoff' or 'off'" in message
    assert "MTT_CYCLE_SECONDS: Input should be greater than or equal to 1" in message
    assert "abc" not in message and "bogus" not in message
