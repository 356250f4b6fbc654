import asyncpg
import pytest

from tests.webhooks.receiver import receiver

__all__ = ["receiver"]


@pytest.fixture(autouse=True)
async def _only_this_tests_webhooks(db: asyncpg.Connection) -> None:
    """A dispatcher sends every due delivery in the database, not one program's: the
    webhooks earlier tests left (some with a retry due later, which a test that moves
    the clock would send and count) are disabled, so each test sees only its own."""
    await db.execute(
        "UPDATE webhook_endpoint SET status = 'disabled', disabled_reason = 'an earlier test'"
        " WHERE status = 'enabled'"
    )
