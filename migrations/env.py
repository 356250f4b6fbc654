"""Alembic environment (async). The URL comes from the caller or LEDGER_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import get_settings
from app.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        # Straight to PostgreSQL when LEDGER_DIRECT_DATABASE_URL is set: not through
        # a transaction-mode pooler (see docs/operations.md).
        settings = get_settings()
        url = settings.direct_database_url or settings.database_url
    if not url:
        raise SystemExit("set LEDGER_DATABASE_URL, or run `points-ledger migrate`")
    return url


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_server_default=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
