"""Runtime settings, read from the environment (names follow the original server's)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "proca-server"


def normalize_database_url(url: str) -> str:
    """Pick the async driver for plain URLs; keep driver-qualified URLs as given."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"DATABASE_URL is not a URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        driver = scheme.split("+", 1)[1] if "+" in scheme else "asyncpg"
        return f"postgresql+{driver}://{rest}"
    if base == "sqlite":
        driver = scheme.split("+", 1)[1] if "+" in scheme else "aiosqlite"
        return f"sqlite+{driver}://{rest}"
    raise ConfigError(f"DATABASE_URL must be a postgresql:// or sqlite:/// URL, not {base}://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    env: Literal["dev", "prod", "test"] = Field("dev", alias="PROCA_ENV")
    data_dir: Path = Field(default_factory=default_data_dir, alias="PROCA_DATA_DIR")
    database_url: str = Field("", alias="DATABASE_URL")
    pool_size: int = Field(10, alias="POOL_SIZE")
    amqp_url: str | None = Field(None, alias="AMQP_URL")
    org_name: str = Field("instance", alias="ORG_NAME")
    admin_email: str | None = Field(None, alias="ADMIN_EMAIL")
    fingerprint_seed: str = Field("", alias="FINGERPRINT_SEED")
    secret_key_base: str = Field("", alias="SECRET_KEY_BASE")
    port: int = Field(4000, alias="PORT")
    listen_ip: str = Field("127.0.0.1", alias="LISTEN_IP")
    domain: str = Field("localhost", alias="DOMAIN")
    cors_allow_origin: str = Field("*", alias="CORS_ALLOW_ORIGIN")
    jwt_secret: str | None = Field(None, alias="JWT_SECRET")
    jwks_url: str | None = Field(None, alias="JWKS_URL")
    jwt_email: str = Field("email", alias="JWT_EMAIL")
    jwt_email_verified: str = Field("user_metadata.email_verified", alias="JWT_EMAIL_VERIFIED")
    allow_unverified_email: bool = Field(False, alias="ALLOW_UNVERIFIED_EMAIL")
    sso_home_url: str | None = Field(None, alias="SSO_HOME_URL")
    local_auth_enable: bool = Field(True, alias="LOCAL_AUTH_ENABLE")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # campaign counters (ARCHITECTURE.md, "Counters")
    stats_background: bool = Field(True, alias="STATS_BACKGROUND")
    stats_cache_ms: int | None = Field(None, ge=0, alias="STATS_CACHE_MS")
    stats_compact_ms: int = Field(1000, gt=0, alias="STATS_COMPACT_MS")
    sync_interval: int = Field(60000, ge=0, alias="SYNC_INTERVAL")
    hcaptcha_key: str | None = Field(None, alias="HCAPTCHA_KEY")
    hcaptcha_url: str = Field("https://api.hcaptcha.com/siteverify", alias="HCAPTCHA_URL")
    procaptcha_url: str | None = Field(None, alias="PROCAPTCHA_URL")
    captcha_service: str = Field("procaptcha", alias="CAPTCHA_SERVICE")
    # message broker (broker/): failed messages come back after RETRY_DELAY_MS, RETRY_LIMIT times
    retry_limit: int = Field(10, ge=0, alias="RETRY_LIMIT")
    retry_delay_ms: int = Field(60000, ge=0, alias="RETRY_DELAY_MS")
    # sender address rewriting of emails sent "as" someone else (email/message.py)
    email_srs_key: str | None = Field(None, alias="EMAIL_SRS_KEY")
    email_srs_prefix: str = Field("SRS0", alias="EMAIL_SRS_PREFIX")
    # seconds between two runs of the confirm reminders (email/reminders.py); 0 = never
    reminder_interval: int = Field(3600, ge=0, alias="REMINDER_INTERVAL")
    # processing pipeline (processing/runtime.py): where actions are processed, the sweeper
    pipeline: Literal["embedded", "handoff", "off"] = Field("embedded", alias="PIPELINE")
    # the signature lane (action/lane.py): plain addActionContact requests on PostgreSQL
    signature_lane: bool = Field(True, alias="SIGNATURE_LANE")
    # the lane's group commit: signatures arriving within this window share one commit
    signature_batch_ms: float = Field(5.0, ge=0, le=1000, alias="SIGNATURE_BATCH_MS")
    run_workers: bool = Field(True, alias="RUN_WORKERS")
    sweep_interval_ms: int = Field(5000, gt=0, alias="SWEEP_INTERVAL_MS")
    sweep_age_ms: int = Field(60000, ge=0, alias="SWEEP_AGE_MS")

    @field_validator(
        "amqp_url",
        "jwt_secret",
        "jwks_url",
        "admin_email",
        "sso_home_url",
        "hcaptcha_key",
        "procaptcha_url",
        "email_srs_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "jwt_email",
        "jwt_email_verified",
        "allow_unverified_email",
        "local_auth_enable",
        mode="before",
    )
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        if value == "" and info.field_name:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator(
        "stats_background",
        "stats_cache_ms",
        "stats_compact_ms",
        "sync_interval",
        "retry_limit",
        "retry_delay_ms",
        "email_srs_prefix",
        "reminder_interval",
        "pipeline",
        "run_workers",
        "sweep_interval_ms",
        "sweep_age_ms",
        "signature_lane",
        "signature_batch_ms",
        mode="before",
    )
    @classmethod
    def _stats_empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        if value == "" and info.field_name:
            return cls.model_fields[info.field_name].default
        return value

    @property
    def stats_cache_ttl(self) -> float:
        """Seconds a process may serve cached counts: 0.5 by default, none in tests (their
        rows, and on SQLite their ids, change from one test to the next)."""
        if self.stats_cache_ms is None:
            return 0.0 if self.env == "test" else 0.5
        return self.stats_cache_ms / 1000

    @property
    def production(self) -> bool:
        return self.env == "prod"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'proca.db'}"

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origin.split(",") if o.strip()] or ["*"]

    def check(self) -> None:
        """Refuse to run in production without the secrets it must not invent."""
        if not self.production:
            return
        missing = [
            name
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("SECRET_KEY_BASE", self.secret_key_base),
                ("FINGERPRINT_SEED", self.fingerprint_seed),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"missing required setting(s) in production: {', '.join(missing)}")
        if len(self.secret_key_base) < 32:
            raise ConfigError("SECRET_KEY_BASE must be at least 32 characters long")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}".splitlines()[0]) from exc
