"""Service settings, read from ``COHORTSYNC_*`` environment variables and an optional TOML file.

Every setting is listed, with its default, in the README's settings table.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "COHORTSYNC_CONFIG"
DEFAULT_CONFIG_FILE = "cohortsync.toml"


class Settings(BaseSettings):
    """All knobs of one cohortsync process."""

    model_config = SettingsConfigDict(env_prefix="COHORTSYNC_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///cohortsync.db",
        description="SQLAlchemy URL of the state database (SQLite file or PostgreSQL).",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=8000, description="Port the HTTP server listens on.")
    workers: int = Field(
        default=1, description="HTTP worker processes (PostgreSQL: any; SQLite: 1-2)."
    )
    metrics_dir: str = Field(
        default="",
        description="With several HTTP processes: the directory their Prometheus metric files "
        "share, emptied at start (default: a new temporary directory; PROMETHEUS_MULTIPROC_DIR, "
        "when set, wins).",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")
    ingest_processes: int | None = Field(
        default=None,
        description="Helper processes validating /import batches (default: cores - 1; 0: none).",
    )
    track_max_age_days: int = Field(
        default=5, description="/track refuses events older than this (use /import for history)."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys encrypting partner credentials, comma-separated, newest first "
        "(default: read from the key file, generated on first start).",
    )
    secret_key_file: str = Field(
        default="",
        description="File holding the encryption keys when COHORTSYNC_SECRET_KEY is unset "
        "(default: cohortsync.key beside the SQLite database, else in the working directory).",
    )
    allow_custom_endpoints: bool = Field(
        default=False,
        description="Let integrations override the partner's base URL (proxies, sandboxes).",
    )
    scheduler: bool = Field(
        default=True,
        description="Run the in-process sync scheduler in the API process (embedded default).",
    )
    scheduler_poll_seconds: float = Field(
        default=5.0, description="How often the scheduler looks for due syncs."
    )
    sync_parallel_runs: int = Field(
        default=4, description="Sync runs executing at once in one process."
    )
    sync_lease_seconds: float = Field(
        default=60.0,
        description="How long a silent worker keeps a sync before another may resume its run.",
    )
    sync_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Members per partner call, below the partner's own limit: smaller batches "
        "checkpoint more often (default: the partner's limit).",
    )
    worker_heartbeat_seconds: float = Field(
        default=10.0,
        gt=0,
        description="PostgreSQL: how often a `cohortsync worker` tells the job queue it is alive.",
    )
    worker_stalled_seconds: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: a worker silent this long is taken for dead, and its sync jobs "
        "go to another worker (which resumes each run once its lease expires). Keep it at "
        "least 3 x COHORTSYNC_WORKER_HEARTBEAT_SECONDS.",
    )
    worker_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long a worker lets its runs go on before asking them to stop "
        "at their next checkpoint (another worker resumes them).",
    )
    sync_block_removal_share: float = Field(
        default=0.5,
        description="A run removing more than this share of a list waits for an admin's confirm.",
    )
    sync_block_min_removals: int = Field(
        default=10,
        description="... but only when it removes at least this many members (small lists).",
    )
    sync_max_members: int = Field(
        default=10_000_000, description="Cohorts larger than this are refused by syncs."
    )
    sync_max_dynamic: int = Field(default=60, description="Dynamic syncs allowed per project.")
    webhook_max_body_bytes: int = Field(
        default=1_048_576, description="Largest partner webhook body accepted (413 above it)."
    )
    webhook_replay_minutes: int = Field(
        default=60,
        ge=1,
        description="A partner payload without a time of its own, seen again within this many "
        "minutes, is a retry (stored once); later it is a new delivery.",
    )
    webhook_secret_overlap_hours: float = Field(
        default=24, description="How long a rotated webhook secret keeps working."
    )
    session_hours: float = Field(
        default=12,
        gt=0,
        description="How long a sign-in lasts (a web session, a POST /api/v1/login token); "
        "tokens from `cohortsync tokens create` last COHORTSYNC_TOKEN_DAYS.",
    )
    trust_proxy: bool = Field(
        default=False,
        description="Believe X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-For (its last "
        "hop) from the reverse proxy in front: behind TLS the session cookie is Secure, sign-in "
        "checks the public origin and counts failures per client address.",
    )
    password_hash_cost: int = Field(
        default=17,
        ge=10,
        le=20,
        description="scrypt work factor as log2 N (r=8, p=1): 17 is OWASP's 128 MiB, ~0.4 s a "
        "hash; stored hashes with other parameters are upgraded at sign-in. Lower only for tests.",
    )
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        description="Password hashes computed at once per process (each takes 2^cost x 1 KiB); "
        "sign-ins beyond that wait up to 5 s, then get 429 with Retry-After.",
    )
    sign_in_account_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins for one email within the window before it is refused (429).",
    )
    sign_in_address_failures: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins from one address (IPv6: its /64) within the window before "
        "it is refused (429).",
    )
    sign_in_window_minutes: float = Field(
        default=15,
        gt=0,
        description="The window failed sign-ins are counted in, and how long a lock lasts.",
    )
    token_days: int = Field(
        default=90,
        ge=0,
        description="How long a token from `cohortsync tokens create` lasts (0: until revoked).",
    )
    allow_private_endpoints: bool = Field(
        default=False,
        description="Let partner, webhook and alert URLs reach loopback, private, link-local "
        "and metadata addresses (the emulators on loopback, an on-premises webhook).",
    )

    ingest_rate_per_second: float = Field(
        default=30_000,
        ge=0,
        description="Records a second one project may send to /track, /engage, /groups and "
        "/import together, per process (Mixpanel's ~30k events/s), each KiB of a request's "
        "decompressed body counting as one more record; over it 429 with "
        "Retry-After. 0: no limit.",
    )
    ingest_burst: int | None = Field(
        default=None,
        ge=1,
        description="Records one project may send at once above the rate (default: a minute "
        "at the rate, Mixpanel's rolling minute).",
    )
    ingest_waiting_per_project: int = Field(
        default=32,
        ge=0,
        description="Requests of one project that may wait for the ingestion writer at once; "
        "more get 429 with Retry-After. 0: no bound.",
    )

    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="Largest request body of every route without a cap of its own (the "
        "ingestion endpoints, partner webhooks and static-cohort uploads have theirs); counted "
        "as it arrives, chunked or not, before sign-in: 413 above it.",
    )

    max_cohorts_per_project: int = Field(
        default=1000,
        ge=1,
        description="Most cohorts one project may hold; creating one more answers 409 (each "
        "change of a cohort checks it against every other one of its project).",
    )

    @property
    def session_lifetime(self) -> timedelta:
        """How long a sign-in token lasts (``session_hours``)."""
        return timedelta(hours=self.session_hours)


def config_file_path() -> Path | None:
    """The optional TOML settings file: ``$COHORTSYNC_CONFIG`` or ``./cohortsync.toml``."""
    named = os.environ.get(CONFIG_FILE_ENV)
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


class FileSettings(Settings):
    """Settings with the TOML file as a lower-priority source than the environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order: constructor arguments, environment, then the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read settings once per process."""
    return FileSettings()
