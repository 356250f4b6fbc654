"""Rules documents by (program, version), parsed once per process.

A stored version never changes (a change is a new version), so a cached document
is never stale; which version is active is read with the facts of each request."""

from __future__ import annotations

import json

from app.db import Connection
from app.rules import RulesDocument

DOCUMENT = "SELECT document FROM rules_version WHERE program_id = $1 AND version = $2"


class RulesCache:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._documents: dict[tuple[int, int], RulesDocument] = {}

    async def document(self, connection: Connection, program_id: int, version: int) -> RulesDocument:
        key = (program_id, version)
        found = self._documents.get(key)
        if found is None:
            raw = await connection.fetchval(DOCUMENT, program_id, version)
            if raw is None:
                raise LookupError(f"program {program_id} has no rules version {version}")
            found = RulesDocument.model_validate(json.loads(raw))
            if len(self._documents) >= self._capacity:
                self._documents.clear()
            self._documents[key] = found
        return found
