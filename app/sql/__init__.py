"""The database's own code: every SQL function, trigger and composite type the
service relies on, one object per file, each file its current definition headed by
its whole contract (README.md here is the index, with the SQLSTATEs they raise).

Migrations never read these files: a revision that changes an object installs a
frozen copy of it (`migrations/sql/<revision>/`, written by `make revision`), so
history replays exactly. `tests/test_sql_definitions.py` fails when what
`upgrade head` installs differs from the files here.

`install()` is the one loader, used by migrations (frozen copies), the definition
test and the revision tool (the live files). It replaces each object in place:
- a type is dropped and created again (types cannot be replaced; functions refer
  to them only at run time);
- a function is created with CREATE OR REPLACE; if that made a new overload (its
  parameters changed), every other overload of the name is dropped, so a name
  always has exactly one definition and calls by parameter name stay unambiguous;
- a trigger is dropped (if it exists) and created again (constraint triggers can't
  be replaced).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

LIVE = Path(__file__).resolve().parent
KINDS = ("types", "functions", "triggers")  # the order objects are installed in


class SqlState(StrEnum):
    """The SQLSTATEs the project's own functions raise (class LP is unused by
    PostgreSQL), and the PostgreSQL ones the service maps; README.md says who raises
    each and which problem it becomes."""

    INSUFFICIENT_POINTS = "LP001"
    APPEND_ONLY = "LP002"
    UNBALANCED_ENTRY = "LP003"
    MEMBER_NOT_FOUND = "LP004"
    UNKNOWN_ACCOUNT = "LP005"
    IDEMPOTENCY_KEY_REUSED = "LP007"
    LOTS_OUT_OF_STEP = "LP008"
    STALE_TIER_DECISION = "LP009"
    PARTNER_FUNDS = "LP010"
    MEMBER_NOT_ELIGIBLE = "LP012"
    BUDGET_EXHAUSTED = "LPB01"
    NO_SUCH_BUDGET = "LPB02"
    NUMERIC_VALUE_OUT_OF_RANGE = "22003"
    UNIQUE_VIOLATION = "23505"
    SERIALIZATION_FAILURE = "40001"
    DEADLOCK_DETECTED = "40P01"
    LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True, slots=True)
class SqlObject:
    kind: str  # types, functions or triggers
    name: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def definition(self) -> str:
        return self.path.read_text()


def objects(root: Path = LIVE) -> list[SqlObject]:
    """Every object defined under `root`, in install order (types, functions,
    triggers; by name within a kind)."""
    return [
        SqlObject(kind, path.stem, path) for kind in KINDS for path in sorted((root / kind).glob("*.sql"))
    ]


_TRIGGER = re.compile(
    r"CREATE\s+(?:CONSTRAINT\s+)?TRIGGER\s+(\w+)\s.*?\sON\s+(\w+)", re.IGNORECASE | re.DOTALL
)

_OVERLOADS = text(
    "SELECT p.oid::regprocedure::text FROM pg_proc p"
    " WHERE p.proname = :name AND p.pronamespace = current_schema()::regnamespace"
)


def _overloads(connection: Connection, name: str) -> set[str]:
    return {str(row[0]) for row in connection.execute(_OVERLOADS, {"name": name})}


def install_one(connection: Connection, obj: SqlObject, definition: str | None = None) -> None:
    """Install one object from its file (or from `definition`, the text to use instead)."""
    sql = obj.definition() if definition is None else definition
    if obj.kind == "types":
        connection.exec_driver_sql(f'DROP TYPE IF EXISTS "{obj.name}"')
        connection.exec_driver_sql(sql)
    elif obj.kind == "functions":
        before = _overloads(connection, obj.name)
        connection.exec_driver_sql(sql)
        if _overloads(connection, obj.name) - before:  # new parameters: drop the old signatures
            for signature in sorted(before):
                connection.exec_driver_sql(f"DROP FUNCTION {signature}")
    elif obj.kind == "triggers":
        found = _TRIGGER.search(sql)
        if found is None or found.group(1) != obj.name:
            raise ValueError(f"{obj.path} must create exactly the trigger {obj.name}")
        connection.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{found.group(1)}" ON "{found.group(2)}"')
        connection.exec_driver_sql(sql)
    else:
        raise ValueError(f"unknown kind of SQL object: {obj.kind}")


def install(connection: Connection, root: Path = LIVE, only: Iterable[str] | None = None) -> list[str]:
    """Install every object under `root` (or those whose `kind/name` is in `only`),
    in install order; returns their keys."""
    wanted = None if only is None else set(only)
    done = []
    for obj in objects(root):
        if wanted is None or obj.key in wanted:
            install_one(connection, obj)
            done.append(obj.key)
    if wanted is not None and wanted - set(done):
        raise ValueError(f"no such SQL objects under {root}: {sorted(wanted - set(done))}")
    return done


def migrations_dir() -> Path:
    """Alembic's script directory: `migrations/` in a checkout, packaged inside
    `app/_migrations/` when installed from a wheel."""
    checkout = LIVE.parent.parent / "migrations"
    return checkout if checkout.is_dir() else LIVE.parent / "_migrations"


def frozen(revision: str) -> Path:
    """Where a revision keeps the frozen copies of the objects it installs."""
    return migrations_dir() / "sql" / revision


# Everything the definition test compares: each function's full definition, each
# trigger's, and each composite type's attributes, in the current schema.
CATALOG = """
SELECT 'functions/' || p.proname AS key, p.oid::regprocedure::text AS signature,
       pg_get_functiondef(p.oid) AS definition
  FROM pg_proc p
 WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind = 'f'
UNION ALL
SELECT 'triggers/' || t.tgname, t.tgname || ' ON ' || c.relname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'types/' || y.typname, y.typname,
       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_type y JOIN pg_class r ON r.oid = y.typrelid
 WHERE y.typnamespace = current_schema()::regnamespace AND y.typtype = 'c' AND r.relkind = 'c'
"""


def catalog(connection: Connection) -> dict[str, str]:
    """What the database holds: `kind/name` (with the signature, for functions and
    triggers) to its definition as PostgreSQL prints it."""
    rows = connection.exec_driver_sql(CATALOG).fetchall()
    return {f"{row[0]} {row[1]}": str(row[2]) for row in rows}


def differences(installed: dict[str, str], expected: dict[str, str]) -> list[str]:
    """How two catalogs differ, one line per object, in key order."""
    lines = []
    for key in sorted(installed.keys() | expected.keys()):
        if key not in expected:
            lines.append(f"{key}: installed, but not defined in app/sql/")
        elif key not in installed:
            lines.append(f"{key}: defined in app/sql/, but not installed by the migrations")
        elif installed[key] != expected[key]:
            lines.append(f"{key}: the installed definition differs from app/sql/")
    return lines
