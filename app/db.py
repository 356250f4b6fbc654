"""Connections, units of work, and the bounded retry around them.

Two ways in, over one database:
- SQLAlchemy sessions for the administrative paths (programs, keys, members);
- a plain asyncpg pool for the ledger's hot path and its reads. On these
  2-core machines the Python side sets the request ceiling (see DESIGN.md and
  bench/awards.py), so a posting is one prepared call to ledger_post() with no
  ORM or result processing around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter, Histogram
from sqlalchemy import ForeignKeyConstraint, MetaData, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings
from app.sql import SqlState

logger = logging.getLogger(__name__)

T = TypeVar("T")
# The hot path's connection: a plain asyncpg connection, or one borrowed from the pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


def _fk_column_name(constraint: Any, table: Any) -> str:
    """A foreign key is named after its first column other than program_id (which
    every key between two tables of one program starts with), so a table's keys to
    one table (an entry's reversed and source entries) have names of their own."""
    names = [str(element.parent.name) for element in constraint.elements]
    return next((name for name in names if name != "program_id"), names[0])


NAMING_CONVENTION: dict[str, Any] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk_column_name": _fk_column_name,
    "fk": "fk_%(table_name)s_%(fk_column_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def program_fk(column: str, target: str, **options: Any) -> ForeignKeyConstraint:
    """A foreign key from one program's row to another row of the same program:
    (program_id, `column`) references the target table's (program_id, `target`'s
    column). Every key between two per-program tables includes program_id, so the
    schema can be distributed by program with co-located joins
    (tests/test_distribution_keys.py; docs/ledger.md)."""
    table, _, referenced = target.partition(".")
    return ForeignKeyConstraint(
        ["program_id", column], [f"{table}.program_id", f"{table}.{referenced}"], **options
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Deadlocks and serialisation failures are safe to retry: the whole unit of work
# rolled back. Under READ COMMITTED with members locked in id order they should
# not happen at all; the retry is a safety net, bounded so that a pathological
# case surfaces as an error instead of a hang.
RETRYABLE_SQLSTATES = frozenset({SqlState.SERIALIZATION_FAILURE, SqlState.DEADLOCK_DETECTED})
ATTEMPTS = 4

# Group commit: the most requests one group sends together, and how many groups of
# one statement a process has in flight at once (more requests wait for the next;
# bench.orders --group-commit: one in flight made larger groups and saved more than two).
GROUP_LIMIT = 16
GROUPS_IN_FLIGHT = 1
# A group's transaction: how long it may wait for a row lock another transaction
# holds before it gives up and its requests run alone (each then waits for its own
# member only, instead of the whole group waiting for one).
BEGIN_GROUP = "BEGIN; SET LOCAL lock_timeout = '250ms'"
# how long the next group waits for requests run alone before it goes without them
DETACH_SECONDS = 0.25


def postgres_error_of(exc: BaseException) -> asyncpg.PostgresError | None:
    """The asyncpg error behind an exception from SQLAlchemy or asyncpg."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncpg.PostgresError):
            return seen
        seen = seen.orig if isinstance(seen, DBAPIError) else seen.__cause__
    return None


# SQLSTATE classes that say the database can't serve now, not that the request is
# wrong: 08 connection exception, 53 insufficient resources, 57 operator
# intervention (57P01 admin shutdown, 57P03 cannot connect now, 57014 a statement
# cancelled by statement_timeout), 58 system error; and 40001/40P01 once the
# retries are spent, 55P03 a lock not available.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
_UNAVAILABLE_STATES = frozenset(
    {SqlState.SERIALIZATION_FAILURE, SqlState.DEADLOCK_DETECTED, SqlState.LOCK_NOT_AVAILABLE}
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, through SQLAlchemy's wrapping."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in found and len(found) < 16:
        found.append(seen)
        if isinstance(seen, DBAPIError) and isinstance(seen.orig, BaseException):
            seen = seen.orig
        else:
            seen = seen.__cause__ or seen.__context__
    return found


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not serve the request now (down,
    restarting, out of connections, too slow), so the caller should retry later
    with the same Idempotency-Key: a 503, never a 500."""
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.PostgresError):
            state = str(cause.sqlstate or "")
            if state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES:
                return True
        if isinstance(
            cause,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.InternalClientError
            | ConnectionError
            | TimeoutError
            | SQLAlchemyTimeoutError,
        ):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        # A socket that could not connect: asyncpg raises a bare OSError when every
        # address of the server refused ("Multiple exceptions: ... Connect call
        # failed"). The database is the only thing a request connects to.
        if isinstance(cause, OSError):
            return True
    return False


def sqlstate_of(exc: BaseException) -> str | None:
    error = postgres_error_of(exc)
    return None if error is None else str(error.sqlstate)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool reset without the reset query. asyncpg still rolls back any open
    transaction on release; the service never changes session state on a pooled
    connection (no SET, LISTEN, WITH HOLD cursors or session advisory locks: those
    take a connection of their own, `Database.own_connection` and `listen`), so the
    default `RESET ALL; ...` would only cost a round trip on every release (measured
    by bench/awards.py). Behind a transaction-mode pooler it would be worse than
    useless: it would run on whichever server connection the pooler picked."""


class DatabaseMisconfigured(RuntimeError):
    """The database (or the pooler in front of it) is not set up as the settings say."""


# LEDGER_DB_TRANSACTION_POOLING: behind PgBouncer in transaction mode, each
# transaction (each statement, outside one) may run on another server connection.
# asyncpg then prepares every statement unnamed, and re-sends its Parse with the
# Bind, so nothing outlives the transaction (two round trips a statement instead of
# one for a cached statement: bench/pooler.py measures what that costs). PgBouncer
# tracks application_name and TimeZone per client and sets them on the server
# connection it hands out; it refuses statement_timeout as a startup parameter.
# SQLAlchemy's asyncpg dialect keeps a prepared-statement cache of its own
# (prepared_statement_cache_size); with it off and asyncpg's off too, it prepares
# unnamed statements as well.
_STATEMENT_CACHE_SIZE = 100  # asyncpg's default, when not pooling
_NO_SQLALCHEMY_STATEMENT_CACHE = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


class PooledConnection(asyncpg.Connection):
    """An asyncpg connection to a transaction-mode pooler: its type lookups run in
    one transaction, so on one server connection.

    asyncpg looks up, once per connection, each type it has no codec of its own for
    (a `bigint[]` parameter of ledger_post(), a composite result) with a recursive
    catalog query whose estimated cost (514,000 here) is past every `jit_*_above_cost`:
    PostgreSQL JIT-compiles it, 155 functions, 3.6-5.4 s of LLVM at load 6 on these
    2-core machines against 0.02 s without JIT (a one-off EXPLAIN ANALYZE, not in
    bench/). asyncpg therefore turns JIT off for the session around the lookup, in
    three statements: `set_config('jit', 'off', false)`, the lookup, and the old
    value back. Behind the pooler each runs on whichever server connection is free,
    so the lookup ran with JIT on whenever another client took the server connection
    in between (under load, past the statement timeout: a 503 on the first award a
    new connection served), and the switch could stay on a server connection other
    clients use. In a transaction the pooler keeps the three on one server
    connection, and a failure rolls the switch back with it."""

    async def _introspect_types(self, typeoids: Any, seconds: float | None) -> Any:
        # asyncpg's own method (private, absent from its stubs; the second argument
        # is the statement's timeout), called from prepare: tests/test_pgbouncer.py
        # fails if it stops being called.
        introspect = super()._introspect_types  # type: ignore[misc]
        if self.is_in_transaction():  # already on one server connection
            return await introspect(typeoids, seconds)
        async with self.transaction():
            return await introspect(typeoids, seconds)


_SQLALCHEMY_POOLING = {**_NO_SQLALCHEMY_STATEMENT_CACHE, "connection_class": PooledConnection}


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))


@dataclass(frozen=True, slots=True)
class ReadFrom:
    """Where a read may be served. `replica`: from the read replica
    (LEDGER_READ_DATABASE_URL) if there is one, as far as it has replayed; with
    `after`, only once it has replayed that WAL position (a write's commit, see
    `Database.wal_position`), else from the primary."""

    replica: bool
    after: int | None = None


PRIMARY = ReadFrom(replica=False)  # what a write depends on, and every read by default


class ReplicaBehind(Exception):
    """Raised by a read on the replica that found the replica lacks what it needs
    (a rules version the primary has activated): `Database.read` serves it from the
    primary instead."""


_on_replica: ContextVar[bool] = ContextVar("on_replica", default=False)


def on_replica() -> bool:
    """Whether the running read is on the read replica: what it sees may lag the
    primary, so a cache of things that change (the active rules version) must not
    keep it."""
    return _on_replica.get()


# The primary's WAL position once a write has committed: the commit record is at
# or before it. With synchronous_commit on (the default, and anything but `off`)
# a commit returns once its record is flushed, so the write position is past it;
# with `off` the record may still be in WAL buffers, and only the insert position
# is sure to be past it.
WAL_POSITION = (
    "SELECT CASE WHEN current_setting('synchronous_commit') = 'off'"
    " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_lsn() END"
)
# NULL on a server that is not a standby.
REPLAYED = "SELECT pg_last_wal_replay_lsn()"
# A replica that could not be reached is not asked again for this long (reads go
# to the primary meanwhile), and a connection to it may take this long to open.
REPLICA_RETRY_SECONDS = 2.0
REPLICA_CONNECT_TIMEOUT_SECONDS = 2.0


_Call: TypeAlias = tuple[int, Any, tuple[Any, ...], "asyncio.Future[asyncpg.Record]"]


def _consume(future: asyncio.Future[asyncpg.Record]) -> None:
    """Mark the outcome of a request whose caller left as seen (no "never retrieved")."""
    if not future.cancelled():
        future.exception()


# Group commit's metrics (here rather than in app/metrics.py, which imports this
# module through app/errors.py).
GROUP_COMMIT_SIZE = Histogram(
    "points_ledger_group_commit_size",
    "requests sent to PostgreSQL together by group commit, by statement (entry: ledger_post(), "
    "order: ledger_post_order()); 1: a request that found no other waiting",
    ("statement",),
    buckets=(1, 2, 4, 8, 16),
)

GROUP_COMMIT_FALLBACKS = Counter(
    "points_ledger_group_commit_fallbacks_total",
    "groups of more than one request that were rolled back and ran each request again alone "
    "(one refused, a lock not had in time, the connection lost), by statement",
    ("statement",),
)


class GroupCommit:
    """One statement sent for many concurrent requests at once: one transaction and
    a few round trips for all of them (group commit), each request its own row.

    A request that finds fewer than `batches` groups in flight starts one at once
    (alone, when the service is idle: no added wait); the others wait for the next
    group, up to `limit` requests each. A group is one transaction: BEGIN (with a
    short lock_timeout, BEGIN_GROUP), `lock` (the members' balance rows, taken in
    ascending member id, the order every writer of the ledger takes them in, so a
    group never deadlocks with another group, a transfer or a job), then every
    request's statement in one pipeline (asyncpg's fetchmany), then COMMIT.

    If anything fails before COMMIT answers (a request refused, a lock not had in
    time, the connection lost), the group is rolled back and each of its requests
    runs again alone, as if there had been no group: each gets its own row or its
    own error, exactly as without grouping. (A connection lost while COMMIT was
    under way may have committed the group: a request run again alone then finds
    its key taken and answers the first response, as a replay.) A request run alone
    that is not answered within DETACH_SECONDS (its member locked elsewhere) goes on
    by itself: the next group does not wait for it. The statement must
    answer exactly one row; `lock` takes two arrays, each request's program id and
    its `key` (the member, as `lock` names it)."""

    def __init__(
        self, database: Database, name: str, query: str, lock: str, *, limit: int, batches: int
    ) -> None:
        self._database = database
        # this statement's metrics (`name` is their `statement` label)
        self._sizes = GROUP_COMMIT_SIZE.labels(name)
        self._fallbacks = GROUP_COMMIT_FALLBACKS.labels(name)
        self._query = query
        self._lock = lock
        self._limit = limit
        self._batches = batches
        self._waiting: list[_Call] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # groups of more than one request that failed and ran each request alone
        self.failed = 0

    async def fetchrow(self, args: tuple[Any, ...], program_id: int, key: Any) -> asyncpg.Record:
        future: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        self._waiting.append((program_id, key, args, future))
        self._start()
        try:
            # the group goes on if this request is cancelled: what it posts is kept for its key
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            raise

    def _start(self) -> None:
        if self._waiting and self._running < self._batches:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        group: list[_Call] = []
        try:
            while self._waiting:
                group = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                await self._send(group)
                group = []  # answered, or run alone and answering on its own
        finally:
            self._running -= 1
            for *_, future in group:  # cancelled mid-group (the process is stopping)
                if not future.done():
                    future.set_exception(ConnectionError("the group commit stopped before it answered"))

    async def _send(self, group: list[_Call]) -> None:
        self._sizes.observe(len(group))
        if len(group) > 1:
            rows: list[asyncpg.Record] | None = None
            try:
                async with self._database.pool.acquire() as connection:
                    rows = await self._together(connection, group)
            except Exception:  # nothing of the group committed: each alone below
                logger.debug("a group of %d failed; each runs alone", len(group), exc_info=True)
            if rows is not None:
                for (*_, future), row in zip(group, rows, strict=True):
                    if not future.done():
                        future.set_result(row)
                return
            self.failed += 1
            self._fallbacks.inc()
        runs = [asyncio.create_task(self._alone(args, future)) for _, _, args, future in group]
        for run in runs:
            self._tasks.add(run)
            run.add_done_callback(self._tasks.discard)
        # A request that waits long for a lock (its member busy elsewhere) goes on by
        # itself and answers when done; the next group does not wait for it.
        await asyncio.wait(runs, timeout=DETACH_SECONDS)

    async def _together(self, connection: Connection, group: list[_Call]) -> list[asyncpg.Record]:
        await connection.execute(BEGIN_GROUP)
        try:
            await connection.execute(self._lock, [call[0] for call in group], [call[1] for call in group])
            rows = await connection.fetchmany(self._query, [call[2] for call in group])
            if len(rows) != len(group):
                raise RuntimeError(f"{len(rows)} rows for a group of {len(group)}")
            await connection.execute("COMMIT")
        except BaseException:
            if not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.execute("ROLLBACK")
            raise
        return rows

    async def _alone(self, args: tuple[Any, ...], future: asyncio.Future[asyncpg.Record]) -> None:
        async def work(connection: Connection) -> asyncpg.Record:
            row = await connection.fetchrow(self._query, *args)
            assert row is not None
            return row

        try:
            row = await self._database.call(work)
        except Exception as exc:  # the request's own error, raised where it waits
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(row)


class Database:
    def __init__(self, url: str, settings: Settings, *, read_url: str | None = None) -> None:
        self.url = url
        self.read_url = read_url  # a streaming replica for reads that tolerate lag, if any
        self._read_pool: asyncpg.Pool | None = None
        self._replica_down_until = 0.0
        self._settings = settings
        self.settings = settings  # what jobs that run over this database are configured with
        self._server_settings = {
            "application_name": "points-ledger",
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "timezone": "UTC",
        }
        self._transaction_pooling = settings.db_transaction_pooling
        if self._transaction_pooling:
            del self._server_settings["statement_timeout"]  # see check_statement_timeout()
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=max(2, settings.db_pool_size // 4),
            max_overflow=settings.db_max_overflow,
            connect_args={
                "server_settings": self._server_settings,
                **(_SQLALCHEMY_POOLING if self._transaction_pooling else {}),
            },
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._pool: asyncpg.Pool | None = None
        self._groups: dict[str, GroupCommit] = {}

    async def connect(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                asyncpg_dsn(self.url),
                min_size=1,
                max_size=self._settings.db_pool_size,
                server_settings=self._server_settings,
                reset=_keep_session,
                statement_cache_size=0 if self._transaction_pooling else _STATEMENT_CACHE_SIZE,
                connection_class=PooledConnection if self._transaction_pooling else asyncpg.Connection,
            )
            if self._transaction_pooling:
                try:
                    await self.check_statement_timeout()
                except BaseException:
                    await self.dispose()
                    raise
        await self._connect_replica()

    async def check_statement_timeout(self) -> None:
        """Refuse to run behind a transaction-mode pooler whose server connections
        lack LEDGER_DB_STATEMENT_TIMEOUT_MS.

        The timeout is what turns a wait on a stuck lock into a 503; without it a
        request hangs. A pooler refuses it at connect, and a `SET LOCAL` at the start
        of every unit of work would cost the hot path a round trip, and an explicit
        transaction around each autocommit statement (an award is one autocommit
        ledger_post() call): measured through PgBouncer 1.18 on a 2-core machine,
        16 clients, a one-row update (a one-off script, not in bench/), `BEGIN; SET
        LOCAL statement_timeout` in one round trip before the statement and a
        COMMIT after cut statements per second from 3,352 to 2,397 (0.72); asyncpg's
        transaction() with a separate SET LOCAL, to 1,533 (0.46). So the timeout is
        set where every server connection gets it at no cost per request (PgBouncer's
        `connect_query`, or `ALTER ROLE ... SET statement_timeout`), and the service
        checks at start that the server connection it is handed has it."""
        found = await self.pool.fetchval(
            "SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'"
        )
        wanted = self._settings.db_statement_timeout_ms
        if found != wanted:
            raise DatabaseMisconfigured(
                f"LEDGER_DB_TRANSACTION_POOLING=true: connections through the pooler have statement_timeout "
                f"{found} ms, LEDGER_DB_STATEMENT_TIMEOUT_MS says {wanted} ms. The service cannot set it on "
                f"connections a pooler shares: set it for them, e.g. in pgbouncer.ini's [databases] entry "
                f"`connect_query='SET statement_timeout = {wanted}'`, or `ALTER ROLE <user> IN DATABASE <db> "
                f"SET statement_timeout = {wanted}` (see docs/operations.md)"
            )

    @property
    def direct_dsn(self) -> str:
        """asyncpg DSN straight to PostgreSQL, for what needs a session of its own
        (LISTEN): LEDGER_DIRECT_DATABASE_URL, else the database URL."""
        return asyncpg_dsn(self._settings.direct_database_url or self.url)

    @asynccontextmanager
    async def own_connection(self) -> AsyncIterator[Connection]:
        """A connection whose session state (a session advisory lock) lasts until the
        block ends: straight to PostgreSQL when LEDGER_DIRECT_DATABASE_URL is set
        (through a transaction-mode pooler, the lock and its unlock could land on
        different server connections, and the lock would stay with one that serves
        other clients), else one from the pool."""
        if self._settings.direct_database_url is None:
            async with self.pool.acquire() as pooled:
                yield pooled
            return
        direct = await asyncpg.connect(self.direct_dsn, server_settings={"application_name": "points-ledger"})
        try:
            yield direct
        finally:
            await direct.close()

    async def _connect_replica(self) -> None:
        """The read replica's pool. It opens connections only when a read asks (a
        replica that is down at start-up does not keep the service from starting),
        and gives up on one after REPLICA_CONNECT_TIMEOUT_SECONDS."""
        if self.read_url is not None and self._read_pool is None:
            self._read_pool = await asyncpg.create_pool(
                asyncpg_dsn(self.read_url),
                min_size=0,
                max_size=self._settings.db_pool_size,
                timeout=REPLICA_CONNECT_TIMEOUT_SECONDS,
                server_settings=self._server_settings,
                reset=_keep_session,
                statement_cache_size=0 if self._transaction_pooling else _STATEMENT_CACHE_SIZE,
                connection_class=PooledConnection if self._transaction_pooling else asyncpg.Connection,
            )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.connect() has not been awaited")
        return self._pool

    async def dispose(self) -> None:
        if self._read_pool is not None:
            await self._read_pool.close()
            self._read_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One SQLAlchemy transaction: committed if the block succeeds, else rolled back."""
        async with self.sessions() as session, session.begin():
            yield session

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`work` in one SQLAlchemy unit of work, retried whole on deadlock/serialisation errors."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.unit_of_work() as session:
                    return await work(session)
            except DBAPIError as exc:
                if attempt == ATTEMPTS or sqlstate_of(exc) not in RETRYABLE_SQLSTATES:
                    raise
            await _backoff(attempt)
        raise AssertionError("unreachable")

    def grouped(self, name: str, query: str, lock: str) -> GroupCommit | None:
        """Group commit for `query`, its members locked by `lock` (GroupCommit), or
        None when LEDGER_GROUP_COMMIT is off. `name` labels its metrics."""
        if not self._settings.group_commit:
            return None
        group = self._groups.get(query)
        if group is None:
            group = self._groups[query] = GroupCommit(
                self, name, query, lock, limit=GROUP_LIMIT, batches=GROUPS_IN_FLIGHT
            )
        return group

    async def call(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection outside any explicit transaction (one
        statement is its own transaction), retried like `run`."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.pool.acquire() as connection:
                    return await work(connection)
            except asyncpg.PostgresError as exc:
                if attempt == ATTEMPTS or exc.sqlstate not in RETRYABLE_SQLSTATES:
                    raise
            await _backoff(attempt)
        raise AssertionError("unreachable")

    @property
    def has_replica(self) -> bool:
        """Whether reads that tolerate lag go to a replica (LEDGER_READ_DATABASE_URL)."""
        return self.read_url is not None

    async def wal_position(self) -> int:
        """The primary's WAL position now: read after a write has committed, a
        replica that has replayed it shows that write."""
        async with self.pool.acquire() as connection:
            position: int = await connection.fetchval(WAL_POSITION)
        return position

    async def read(self, work: Callable[[Connection], Awaitable[T]], source: ReadFrom = PRIMARY) -> T:
        """`work` (reads only) on the replica when `source` allows it, else on the
        primary as `call` runs it.

        With `source.after`, the replica serves the read only once it has replayed
        that position: checked on the connection that then runs `work` (so a
        replica URL may name a load balancer in front of several standbys), polled
        in short steps for up to LEDGER_READ_WAIT_MS, then the primary serves it. A
        replica that cannot be reached, or fails the read, sends it to the primary
        too (and is left alone for REPLICA_RETRY_SECONDS): never a 503 while the
        primary is fine."""
        if self._read_pool is not None and source.replica and time.monotonic() >= self._replica_down_until:
            deadline = time.monotonic() + self._settings.read_wait_ms / 1000
            step = 0.002
            while True:
                try:
                    async with self._read_pool.acquire() as connection:
                        caught_up = source.after is None or await _replayed(connection, source.after)
                        if caught_up is None:  # not a standby: no way to tell, the primary serves it
                            break
                        if caught_up:
                            token = _on_replica.set(True)
                            try:
                                return await work(connection)
                            finally:
                                _on_replica.reset(token)
                except ReplicaBehind:
                    break
                except _DATABASE_ERRORS as exc:
                    if not database_unavailable(exc):
                        raise
                    logger.warning("read replica unavailable; reading from the primary: %s", exc)
                    self._replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS
                    break
                if time.monotonic() + step > deadline:
                    break
                await asyncio.sleep(step)
                step = min(step * 2, 0.025)
        return await self.call(work)


# What a replica that is down, restarting or in conflict with its replay raises.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


async def _replayed(connection: Connection, position: int) -> bool | None:
    """Whether the standby behind `connection` has replayed `position` (None: the
    server is not a standby)."""
    replayed: int | None = await connection.fetchval(REPLAYED)
    return None if replayed is None else replayed >= position


async def stream(
    connection: Connection, query: str, *args: object, batch: int
) -> AsyncIterator[asyncpg.Record]:
    """Every row `query` selects, `batch` at a time, through a cursor of the
    caller's transaction (`DECLARE ... CURSOR` and `FETCH`): memory stays flat.

    Not asyncpg's `connection.cursor()`: that prepares a named statement which
    outlives the transaction. Behind a transaction-mode pooler it would stay on a
    server connection that other clients then use (another process's statement of
    the same name would clash with it). This cursor, and both statements (prepared
    outside asyncpg's statement cache, so that the cursor's unique name does not
    crowd it), end with the transaction."""
    name = f"stream_{uuid.uuid4().hex}"
    declare = await connection.prepare(f"DECLARE {name} NO SCROLL CURSOR FOR {query}")
    await declare.fetch(*args)
    fetch = await connection.prepare(f"FETCH {int(batch)} FROM {name}")
    while rows := await fetch.fetch():
        for row in rows:
            yield row
        if len(rows) < batch:
            return


async def listen(
    dsn: str,
    channel: str,
    *,
    on_notify: Callable[[], None],
    on_state: Callable[[bool], None],
    stop: asyncio.Event,
) -> None:
    """Hold a LISTEN connection on `channel` until `stop`, reconnecting when it drops.

    For caches that must drop what they hold when another process changes it:
    `on_notify` runs on each notification, `on_state(True)` once listening and
    `on_state(False)` whenever not (then nothing may be cached: a notification
    could be missed)."""
    lost = asyncio.Event()

    def notified(*_: object) -> None:
        on_notify()

    def on_lost(_: object) -> None:
        on_state(False)
        lost.set()

    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            connection.add_termination_listener(on_lost)
            await connection.add_listener(channel, notified)
            lost.clear()
            on_state(True)
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())}
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.warning("cannot LISTEN on %s; not caching what it guards", channel, exc_info=True)
        finally:
            on_state(False)
            if connection is not None and not connection.is_closed():
                await connection.close()
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
