"""Settings, read once from the environment (prefix ``LEDGER_``)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


def normalise_database_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and pin the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("must be a PostgreSQL URL such as postgresql+asyncpg://user@host:5432/db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    env: Environment = Field(
        default=Environment.development,
        description="development (default), test or production; production refuses unsafe defaults",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the PostgreSQL database; unset in development starts an "
        "embedded server in data_dir",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="development bootstrap: accepted as an admin key of the default program",
    )
    data_dir: Path = Field(
        default=Path(".points-ledger"),
        description="where the embedded PostgreSQL keeps its files when database_url is unset",
    )
    read_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL streaming replica (a hot standby of database_url, "
        "or a load balancer in front of several): reads that tolerate lag (member views, statements, "
        "lists, events) go there; writes and what they depend on stay on the primary. Unset: every "
        "read is the primary's",
    )
    read_wait_ms: int = Field(
        default=500,
        ge=0,
        le=10_000,
        description="how long a read that sends Ledger-Min-Position waits for the replica to replay "
        "that position (it polls) before the primary serves it instead",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    group_commit: bool = Field(
        default=True,
        description="awards and orders arriving while others are being written go to PostgreSQL "
        "together, one transaction for the group (each request still gets its own answer or error: "
        "a group that fails runs each request alone); false: each alone",
    )
    db_statement_timeout_ms: int = Field(
        default=15_000,
        ge=100,
        description="upper bound for any statement, waits on row locks included",
    )
    db_transaction_pooling: bool = Field(
        default=False,
        description="the database URL is a pooler in transaction mode (PgBouncer's pool_mode=transaction): "
        "no prepared statement outlives its transaction, nothing is set on connect (statement_timeout "
        "must then be set for the role or database, or by the pooler: the service checks it on start), "
        "and whatever needs a session of its own (LISTEN, the worker's job locks, migrations, verify) "
        "takes direct_database_url, which this requires",
    )
    direct_database_url: str | None = Field(
        default=None,
        description="a URL straight to PostgreSQL, bypassing any pooler, for what needs a session of its "
        "own: LISTEN (revocations, rules activations, webhook wake-ups), the worker's job locks, "
        "migrations, verify and rebuild-lots; unset: database_url. Required with db_transaction_pooling",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        description="the largest request body accepted; a larger one is refused with 413 "
        "payload_too_large before it is read in full",
    )
    auth_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="how long a verified API key is trusted without asking the database again. "
        "Revocations still apply at once: every process LISTENs for them and drops its cache, "
        "and caches nothing while that connection is down. 0 checks every request.",
    )

    hold_ttl_seconds: int = Field(
        default=900,
        ge=1,
        description="how long a hold lasts when the request names no expires_at; the worker "
        "releases it after that",
    )
    hold_max_seconds: int = Field(
        default=7 * 86_400, ge=1, description="the longest a hold may last (a later expires_at is refused)"
    )
    conversion_timeout_seconds: float = Field(
        default=7 * 86_400,
        gt=0,
        allow_inf_nan=False,
        description="how long a conversion to a partner's units may wait for the partner's "
        "confirmation; the worker then fails it and gives the points back",
    )
    worker_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often `points-ledger worker` runs each job not in worker_job_intervals",
    )
    worker_job_intervals: dict[str, float] = Field(
        default_factory=lambda: {
            "expire": 3600.0,
            "evaluate-tiers": 3600.0,
            "notify-expiring": 3600.0,
            "close-statements": 3600.0,
            "check-cost-cap": 86400.0,
            "snapshot-segments": 86400.0,
            "rollup-reports": 3600.0,
        },
        description="seconds between runs of particular jobs (JSON, e.g. "
        '{"evaluate-tiers": 86400}): jobs whose dates are hours or days apart need not run every minute',
    )

    segment_snapshot_retention_days: int = Field(
        default=35,
        ge=1,
        le=3660,
        description="days of segment snapshots the snapshot-segments job keeps before its as_of, and "
        "the latest one before them: an order paid up to that long before it is recorded reads the "
        "same snapshot as it would have then",
    )

    serve_background: bool = Field(
        default=True,
        description="run the chainer and the webhook dispatcher inside `points-ledger serve` too "
        "(they always run in `points-ledger worker`; any number of processes may run them)",
    )
    chain_interval_seconds: float = Field(
        default=0.25, gt=0, le=60, description="how often the chainer looks for newly committed entries"
    )
    chain_batch: int = Field(
        default=500, ge=1, le=10_000, description="entries and events the chainer takes per transaction"
    )
    webhook_retry_seconds: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="the waits before each retry of a failed webhook delivery, comma-separated seconds "
        "(each with up to 10% jitter); after the last, the delivery is failed",
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="a delivery that has no 2xx answer within this has failed"
    )

    metrics_token: SecretStr | None = Field(
        default=None, description="when set, GET /metrics needs it as a bearer token"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="debug also shows the embedded server's, Alembic's and uvicorn's own lines",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json: one JSON object per line"
    )
    access_log: bool | None = Field(
        default=None,
        description="one log line per request (method, path, status, time, request id); "
        "unset: on outside production",
    )

    @property
    def access_log_on(self) -> bool:
        return self.access_log if self.access_log is not None else self.env is not Environment.production

    @property
    def webhook_retries(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_seconds.split(",")]

    @field_validator("webhook_retry_seconds")
    @classmethod
    def _retries(cls, value: str) -> str:
        try:
            waits = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,300,1800") from None
        if not waits or not all(0 <= wait <= 7 * 86_400 for wait in waits):  # NaN and inf fail too
            raise ValueError("must be comma-separated seconds from 0 to 604800 (7 days), e.g. 5,300,1800")
        return value

    @field_validator("database_url", "direct_database_url")
    @classmethod
    def _normalise(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_database_url(value)

    @field_validator("read_database_url")
    @classmethod
    def _normalise_read(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_database_url(value)

    @model_validator(mode="after")
    def _replica_of_a_primary(self) -> Settings:
        if self.read_database_url is not None and self.database_url is None:
            raise ValueError(
                "LEDGER_READ_DATABASE_URL names a replica of LEDGER_DATABASE_URL, which is not set "
                "(the embedded server has no replica)"
            )
        return self

    @model_validator(mode="after")
    def _pooling_needs_a_direct_url(self) -> Settings:
        # Through a transaction-mode pooler, LISTEN would land on whichever server
        # connection the pooler picked and hand it back: notifications missed (a
        # revoked key still trusted from the cache) or delivered to another client.
        # Refusing is simpler to reason about than running without caches.
        if self.db_transaction_pooling and (self.database_url is None or self.direct_database_url is None):
            raise ValueError(
                "LEDGER_DB_TRANSACTION_POOLING=true needs LEDGER_DATABASE_URL (the pooler) and "
                "LEDGER_DIRECT_DATABASE_URL (PostgreSQL itself, for LISTEN, the worker's job locks, "
                "migrations and verify)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env is Environment.production:
            if self.database_url is None:
                raise ValueError("LEDGER_DATABASE_URL is required when LEDGER_ENV=production")
            if self.admin_key is not None:
                raise ValueError(
                    "LEDGER_ADMIN_KEY is a development bootstrap and is refused in production; "
                    "create keys with `points-ledger api-key create`"
                )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
