"""Rules documents by (program, version), parsed once per process, and each
program's active version.

A stored version never changes (a change is a new version), so a cached document
is never stale. Which version is active changes on activation: a trigger NOTIFYs
`rules_activated`, and while `watch` holds a LISTEN connection, the active version
is cached and dropped on each notification; while it does not, the active version
is read every time. Orders read it with their facts anyway; awards, redemptions
and holds save a round trip.

A read on the read replica (app/db.py, `on_replica`) uses what is cached but never
caches what it reads there: the replica may not have replayed an activation whose
notification already came, and its stale version would then outlive it."""

from __future__ import annotations

import asyncio
import json

from app.db import Connection, ReplicaBehind, listen, on_replica
from app.rules import RulesDocument

DOCUMENT = "SELECT document FROM rules_version WHERE program_id = $1 AND version = $2"
ACTIVE_VERSION = "SELECT version FROM rules_version WHERE program_id = $1 AND active"
ACTIVATED_CHANNEL = "rules_activated"


class RulesCache:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._documents: dict[tuple[int, int], RulesDocument] = {}
        self._active: dict[int, int] = {}
        self._listening = False
        # Bumped by every activation: a version read before one is not cached after it.
        self._generation = 0

    async def document(self, connection: Connection, program_id: int, version: int) -> RulesDocument:
        key = (program_id, version)
        found = self._documents.get(key)
        if found is None:
            raw = await connection.fetchval(DOCUMENT, program_id, version)
            if raw is None and on_replica():
                raise ReplicaBehind(f"the replica has not replayed rules version {version} yet")
            if raw is None:
                raise LookupError(f"program {program_id} has no rules version {version}")
            found = RulesDocument.model_validate(json.loads(raw))
            if len(self._documents) >= self._capacity:
                self._documents.clear()
            self._documents[key] = found
        return found

    async def active_version(self, connection: Connection, program_id: int) -> int | None:
        """The program's active version (None: it has none)."""
        if self._listening:
            found = self._active.get(program_id)
            if found is not None:
                return found
        generation = self._generation
        value = await connection.fetchval(ACTIVE_VERSION, program_id)
        version = None if value is None else int(value)
        if version is not None and self._listening and generation == self._generation and not on_replica():
            if len(self._active) >= self._capacity:
                self._active.clear()
            self._active[program_id] = version
        return version

    async def active(self, connection: Connection, program_id: int) -> tuple[int, RulesDocument]:
        """The program's active rules version and its document (every program has one)."""
        version = await self.active_version(connection, program_id)
        if version is None:
            raise LookupError(f"program {program_id} has no active rules version")
        return version, await self.document(connection, program_id, version)

    def cached_active(self, program_id: int) -> tuple[tuple[int, RulesDocument] | None, int]:
        """The program's active version and document if this process already knows
        them (no query), else None; and the generation to hand remember_active()
        with what the caller then reads. A caller that acts on the cached version
        checks it against the one its own query read."""
        generation = self._generation
        version = self._active.get(program_id) if self._listening else None
        if version is None:
            return None, generation
        found = self._documents.get((program_id, version))
        return (None if found is None else (version, found)), generation

    def remember_active(self, program_id: int, version: int, generation: int) -> None:
        """Record the active version a caller read in a query of its own, unless an
        activation came in since it asked for `generation`."""
        if self._listening and generation == self._generation:
            if len(self._active) >= self._capacity:
                self._active.clear()
            self._active[program_id] = version

    def activated(self) -> None:
        self._generation += 1
        self._active.clear()

    def _listening_changed(self, listening: bool) -> None:
        self.activated()
        self._listening = listening

    async def watch(self, dsn: str, stop: asyncio.Event) -> None:
        """Cache active versions while a LISTEN connection is up, until `stop`."""
        await listen(
            dsn, ACTIVATED_CHANNEL, on_notify=self.activated, on_state=self._listening_changed, stop=stop
        )
