"""Runtime settings, read from the environment (names follow the original server's)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
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
    # uvicorn's line per HTTP request (`proca-server serve`)
    access_log: bool = Field(True, alias="ACCESS_LOG")
    # error reporting (error_reporting.py, the `sentry` extra): off while the DSN is unset;
    # the environment defaults to PROCA_ENV
    sentry_dsn: str | None = Field(None, alias="SENTRY_DSN")
    sentry_environment: str | None = Field(None, alias="SENTRY_ENVIRONMENT")
    # where the homepage links for this project's documentation (web/home.py)
    docs_url: str | None = Field(None, alias="DOCS_URL")
    # campaign counters (ARCHITECTURE.md, "Counters")
    stats_background: bool = Field(True, alias="STATS_BACKGROUND")
    stats_cache_ms: int | None = Field(None, ge=0, alias="STATS_CACHE_MS")
    stats_compact_ms: int = Field(1000, gt=0, alias="STATS_COMPACT_MS")
    sync_interval: int = Field(60000, ge=0, alias="SYNC_INTERVAL")
    hcaptcha_key: str | None = Field(None, alias="HCAPTCHA_KEY")
    hcaptcha_url: str = Field("https://api.hcaptcha.com/siteverify", alias="HCAPTCHA_URL")
    procaptcha_url: str | None = Field(None, alias="PROCAPTCHA_URL")
    captcha_service: str = Field("procaptcha", alias="CAPTCHA_SERVICE")
    # the ECI build (docs/eci.md): /api serves only what a signature page needs, with a
    # captcha on every signature; the staff API moves to /private/api
    enable_eci: bool = Field(False, alias="ENABLE_ECI")
    # message broker (broker/): failed messages come back after RETRY_DELAY_MS, RETRY_LIMIT times
    retry_limit: int = Field(10, ge=0, alias="RETRY_LIMIT")
    retry_delay_ms: int = Field(60000, ge=0, alias="RETRY_DELAY_MS")
    # how long the detail worker waits for an org's detail backend (workers/detail.py)
    detail_lookup_timeout_ms: int = Field(5000, gt=0, alias="DETAIL_LOOKUP_TIMEOUT_MS")
    # sender address rewriting of emails sent "as" someone else (email/message.py)
    email_srs_key: str | None = Field(None, alias="EMAIL_SRS_KEY")
    email_srs_prefix: str = Field("SRS0", alias="EMAIL_SRS_PREFIX")
    # the providers' bounce and tracking reports (/webhook/mailjet, /webhook/brevo) must carry
    # it when set (email/webhooks.py)
    email_webhook_secret: str | None = Field(None, alias="EMAIL_WEBHOOK_SECRET")
    # where Stripe's API is reached (donation/stripe.py): Stripe's own when unset; a local
    # stand-in (stripe-mock, the tests' server) otherwise
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    # seconds between two runs of the confirm reminders (email/reminders.py); 0 = never
    reminder_interval: int = Field(3600, ge=0, alias="REMINDER_INTERVAL")
    # seconds between two looks for due housekeeping (retention/loop.py: ended campaigns
    # closed, orgs' retention policies applied, each once a day); 0 = never
    housekeeping_interval: int = Field(3600, ge=0, alias="HOUSEKEEPING_INTERVAL")
    # mail to target (mtt/): the drip cycle, the letters a cycle may plan per 10 targets of a
    # campaign, how often the senders look for due letters, how long a sender holds the letters
    # it claimed, how often a failed letter is tried; MTT_ENABLED=false runs no scheduler here
    mtt_enabled: bool = Field(True, alias="MTT_ENABLED")
    mtt_cycle_seconds: int = Field(180, ge=1, alias="MTT_CYCLE_SECONDS")
    max_messages_per_cycle: int = Field(99, ge=1, alias="MAX_MESSAGES_PER_CYCLE")
    mtt_send_interval_ms: int = Field(5000, ge=10, alias="MTT_SEND_INTERVAL_MS")
    mtt_claim_seconds: int = Field(600, ge=5, alias="MTT_CLAIM_SECONDS")
    mtt_max_attempts: int = Field(5, ge=1, alias="MTT_MAX_ATTEMPTS")
    # processing pipeline (processing/runtime.py): where actions are processed, the sweeper
    pipeline: Literal["embedded", "handoff", "off"] = Field("embedded", alias="PIPELINE")
    # the signature lane (action/lane.py): plain addActionContact requests on PostgreSQL
    signature_lane: bool = Field(True, alias="SIGNATURE_LANE")
    # the lane's group commit: signatures arriving within this window share one commit
    signature_batch_ms: float = Field(5.0, ge=0, le=1000, alias="SIGNATURE_BATCH_MS")
    run_workers: bool = Field(True, alias="RUN_WORKERS")
    sweep_interval_ms: int = Field(5000, gt=0, alias="SWEEP_INTERVAL_MS")
    sweep_age_ms: int = Field(60000, ge=0, alias="SWEEP_AGE_MS")
    # request limits (web/body_limit.py, action/velocity.py; docs/security.md)
    max_body_bytes: int = Field(1_048_576, ge=1024, alias="MAX_BODY_BYTES")
    # signatures accepted per window from one client address / with one email, per process;
    # 0 turns a limit off
    signature_limit_per_address: int = Field(500, ge=0, alias="SIGNATURE_LIMIT_PER_ADDRESS")
    signature_limit_per_email: int = Field(20, ge=0, alias="SIGNATURE_LIMIT_PER_EMAIL")
    signature_limit_window: int = Field(3600, gt=0, alias="SIGNATURE_LIMIT_WINDOW")
    # encryption at rest (contact/crypto.py, service/secrets.py): refuse signatures whose
    # contacts would be stored in clear (an org without an active key, no instance sign key)
    require_encryption: bool = Field(False, alias="REQUIRE_ENCRYPTION")
    # log-in throttling (auth/throttle.py): failed log-ins allowed per window with one email /
    # from one client address, per process; 0 turns a limit off
    login_max_failures_per_account: int = Field(10, ge=0, alias="LOGIN_MAX_FAILURES_PER_ACCOUNT")
    login_max_failures_per_address: int = Field(50, ge=0, alias="LOGIN_MAX_FAILURES_PER_ADDRESS")
    login_failure_window: int = Field(900, gt=0, alias="LOGIN_FAILURE_WINDOW")
    # GraphQL document limits (graphql/limits.py; docs/configuration.md): far above what any
    # real client sends, they refuse a document before it is validated or run
    graphql_max_tokens: int = Field(5000, gt=0, alias="GRAPHQL_MAX_TOKENS")
    graphql_max_depth: int = Field(20, gt=0, alias="GRAPHQL_MAX_DEPTH")
    graphql_max_aliases: int = Field(100, ge=0, alias="GRAPHQL_MAX_ALIASES")
    graphql_max_introspection: int = Field(2, ge=0, alias="GRAPHQL_MAX_INTROSPECTION")
    graphql_max_cost: int = Field(100_000, gt=0, alias="GRAPHQL_MAX_COST")
    graphql_max_repeats: int = Field(20, gt=0, alias="GRAPHQL_MAX_REPEATS")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        """An empty variable counts as unset (docs/configuration.md)."""
        if value == "" and info.field_name:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
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
        """Refuse to run in production without the secrets it must not invent, and in the
        ECI build without a captcha."""
        if self.enable_eci and not (self.hcaptcha_key or self.procaptcha_url):
            raise ConfigError("ENABLE_ECI requires a captcha: set HCAPTCHA_KEY or PROCAPTCHA_URL")
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


def describe_invalid(exc: ValidationError) -> str:
    """One line naming each variable and what is wrong with it (never its value: it may be a
    secret)."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        problems.append(f"{name}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_invalid(exc)) from None
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}".splitlines()[0]) from None
