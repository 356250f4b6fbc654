"""A program (tenant) is the unit the schema can be distributed by: on Citus, or any
engine that shards PostgreSQL by a key, every per-program table is distributed by
`program_id` and its joins stay on one node. That holds only if every primary key,
unique constraint and unique index of those tables leads with `program_id` (a shard
can enforce uniqueness only of keys that contain the distribution column) and every
foreign key between them includes it. These tests read the catalog of a database at
`upgrade head`, so a new table or key that breaks the rule fails here."""

from __future__ import annotations

import asyncpg
import pytest

# The tables that are not per program, each with the reason. On Citus they would be
# reference tables (copied to every node), which per-program tables may reference
# but which must not reference per-program tables.
GLOBAL_TABLES = {
    "alembic_version": "Alembic's own bookkeeping: the schema's revision",
    "program": "the tenants themselves: what program_id refers to",
    "service_secret": "the service's own secrets (the webhook signing key), not any program's",
    "api_key_lookup": "a key's digest to its program: read to authenticate, before the program is known",
}

TABLES = """
SELECT c.relname AS table_name,
       (SELECT a.attnotnull FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attname = 'program_id' AND NOT a.attisdropped) AS program_id_not_null
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.relname
"""

# Every unique index (primary keys and unique constraints are backed by one), with
# its key columns in order (0: an expression) and the constraint it backs, if any.
UNIQUE_KEYS = """
SELECT t.relname AS table_name, i.relname AS index_name, x.indisprimary AS is_primary,
       coalesce(con.conname, '') AS constraint_name,
       array(SELECT coalesce(a.attname, '(expression)')
               FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n)
               LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
              ORDER BY k.n) AS columns
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.contype IN ('p', 'u')
 WHERE t.relnamespace = 'public'::regnamespace AND x.indisunique
 ORDER BY t.relname, i.relname
"""

FOREIGN_KEYS = """
SELECT con.conname AS name, t.relname AS table_name, r.relname AS referenced_table,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.n)
           AS columns,
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.n)
           AS referenced_columns
  FROM pg_constraint con
  JOIN pg_class t ON t.oid = con.conrelid
  JOIN pg_class r ON r.oid = con.confrelid
 WHERE con.contype = 'f' AND t.relnamespace = 'public'::regnamespace
 ORDER BY t.relname, con.conname
"""


@pytest.fixture
async def tables(db: asyncpg.Connection) -> dict[str, bool | None]:
    """Each table in public: whether its program_id is NOT NULL (None: it has none)."""
    return {row["table_name"]: row["program_id_not_null"] for row in await db.fetch(TABLES)}


def _tenant(table: str) -> bool:
    return table not in GLOBAL_TABLES


class TestDistributionKeys:
    async def test_the_exceptions_name_tables_that_exist(self, tables: dict[str, bool | None]) -> None:
        assert sorted(set(GLOBAL_TABLES) - set(tables)) == []

    async def test_every_tenant_table_has_a_program_id_not_null(self, tables: dict[str, bool | None]) -> None:
        lacking = sorted(table for table, not_null in tables.items() if _tenant(table) and not not_null)
        assert lacking == []

    async def test_every_tenant_table_has_a_primary_key(
        self, db: asyncpg.Connection, tables: dict[str, bool | None]
    ) -> None:
        keyed = {row["table_name"] for row in await db.fetch(UNIQUE_KEYS) if row["is_primary"]}
        assert sorted(table for table in tables if _tenant(table) and table not in keyed) == []

    async def test_every_unique_key_of_a_tenant_table_leads_with_program_id(
        self, db: asyncpg.Connection
    ) -> None:
        # primary keys, unique constraints and unique indexes (partial ones too)
        offending = [
            f"{row['table_name']}: {row['constraint_name'] or row['index_name']}"
            f" ({', '.join(row['columns'])})"
            for row in await db.fetch(UNIQUE_KEYS)
            if _tenant(row["table_name"]) and row["columns"][:1] != ["program_id"]
        ]
        assert offending == []

    async def test_every_foreign_key_between_tenant_tables_includes_program_id(
        self, db: asyncpg.Connection
    ) -> None:
        offending = []
        for row in await db.fetch(FOREIGN_KEYS):
            if not (_tenant(row["table_name"]) and _tenant(row["referenced_table"])):
                continue
            pairs = list(zip(row["columns"], row["referenced_columns"], strict=True))
            if ("program_id", "program_id") not in pairs:
                offending.append(f"{row['table_name']}: {row['name']} ({', '.join(row['columns'])})")
        assert offending == []

    async def test_no_global_table_references_a_tenant_table(self, db: asyncpg.Connection) -> None:
        # a reference table copied to every node cannot point into one program's shard
        offending = [
            f"{row['table_name']}: {row['name']} -> {row['referenced_table']}"
            for row in await db.fetch(FOREIGN_KEYS)
            if not _tenant(row["table_name"]) and _tenant(row["referenced_table"])
        ]
        assert offending == []
