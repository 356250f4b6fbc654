"""The unit-of-work helpers retry whole on deadlock and serialisation failures, a
bounded number of times, and never on anything else."""

from __future__ import annotations

import asyncpg
import pytest

from app.db import ATTEMPTS, Connection, Database


class TestRetry:
    @pytest.mark.parametrize("error", [asyncpg.DeadlockDetectedError, asyncpg.SerializationError])
    async def test_retries_a_transient_conflict(self, database: Database, error: type[Exception]) -> None:
        calls = 0

        async def work(connection: Connection) -> int:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise error("conflict")
            return int(await connection.fetchval("SELECT 41 + 1"))

        assert await database.call(work) == 42
        assert calls == 3

    async def test_gives_up_after_a_bounded_number_of_attempts(self, database: Database) -> None:
        calls = 0

        async def work(_: Connection) -> None:
            nonlocal calls
            calls += 1
            raise asyncpg.DeadlockDetectedError("always")

        with pytest.raises(asyncpg.DeadlockDetectedError):
            await database.call(work)
        assert calls == ATTEMPTS

    async def test_does_not_retry_other_errors(self, database: Database) -> None:
        calls = 0

        async def work(connection: Connection) -> None:
            nonlocal calls
            calls += 1
            await connection.execute("SELECT 1 / 0")

        with pytest.raises(asyncpg.DivisionByZeroError):
            await database.call(work)
        assert calls == 1
