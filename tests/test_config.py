from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from app.config import Environment, Settings


class TestSettings:
    def test_defaults_run_locally(self) -> None:
        settings = Settings(_env_file=None)
        assert settings.env is Environment.development

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
            ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
            ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ],
    )
    def test_database_url_forms(self, given: str, expected: str) -> None:
        assert Settings(database_url=given).database_url == expected

    def test_worker_job_intervals_come_from_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert Settings(_env_file=None).worker_job_intervals == {
            "expire": 3600.0,
            "evaluate-tiers": 3600.0,
            "notify-expiring": 3600.0,
            "close-statements": 3600.0,
            "check-cost-cap": 86400.0,
            "snapshot-segments": 86400.0,
            "rollup-reports": 3600.0,
        }
        monkeypatch.setenv("LEDGER_WORKER_JOB_INTERVALS", '{"evaluate-tiers": 86400}')
        assert Settings(_env_file=None).worker_job_intervals == {"evaluate-tiers": 86400.0}

    def test_webhook_retries_are_comma_separated_seconds(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert Settings(_env_file=None).webhook_retries == [5, 300, 1800, 7200, 18000, 36000, 36000]
        monkeypatch.setenv("LEDGER_WEBHOOK_RETRY_SECONDS", "0,1.5")
        assert Settings(_env_file=None).webhook_retries == [0, 1.5]
        for bad in ("", "5,,6", "-1", "nan", "inf", "1e9", "soon"):
            monkeypatch.setenv("LEDGER_WEBHOOK_RETRY_SECONDS", bad)
            with pytest.raises(ValidationError):
                Settings(_env_file=None)

    def test_rejects_other_databases(self) -> None:
        with pytest.raises(ValidationError):
            Settings(database_url="mysql://u@h/d")

    def test_a_read_replica_is_a_replica_of_the_database_url(self) -> None:
        settings = Settings(database_url="postgresql://p/d", read_database_url="postgres://r/d")
        assert settings.read_database_url == "postgresql+asyncpg://r/d"
        assert settings.read_wait_ms == 500
        assert Settings(database_url="postgresql://p/d", read_database_url="").read_database_url is None
        with pytest.raises(ValidationError, match="LEDGER_DATABASE_URL, which is not set"):
            Settings(database_url=None, read_database_url="postgresql://r/d")
        with pytest.raises(ValidationError):
            Settings(database_url="postgresql://p/d", read_database_url="mysql://r/d")

    def test_production_needs_a_database_url(self) -> None:
        with pytest.raises(ValidationError, match="LEDGER_DATABASE_URL is required"):
            Settings(env=Environment.production, database_url=None)

    def test_production_refuses_the_bootstrap_admin_key(self) -> None:
        with pytest.raises(ValidationError, match="refused in production"):
            Settings(env=Environment.production, database_url="postgresql://h/d", admin_key=SecretStr("x"))

    def test_reads_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://h/d")
        monkeypatch.setenv("LEDGER_ENV", "production")
        settings = Settings()
        assert settings.env is Environment.production
        assert settings.database_url == "postgresql+asyncpg://h/d"

    def test_transaction_pooling_needs_a_direct_url(self) -> None:
        with pytest.raises(ValidationError, match="LEDGER_DIRECT_DATABASE_URL"):
            Settings(_env_file=None, database_url="postgresql://h:6432/d", db_transaction_pooling=True)
        settings = Settings(
            _env_file=None,
            database_url="postgresql://h:6432/d",
            direct_database_url="postgres://h:5432/d",
            db_transaction_pooling=True,
        )
        assert settings.direct_database_url == "postgresql+asyncpg://h:5432/d"
