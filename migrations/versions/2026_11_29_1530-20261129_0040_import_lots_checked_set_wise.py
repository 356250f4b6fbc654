"""Imports: ledger_import_lots() checks a chunk set-wise (each lot's member locked
and present, each posting's and lot's entry written by the chunk, each entry
balanced) and, when the role may set session_replication_role, leaves the per-row
foreign-key and balanced-entry triggers out of its own statements; a new
p_row_checks parameter keeps them, and the result says which ran.

Revision ID: 20261129_0040
Revises: 20261129_0030
Create Date: 2026-11-29 15:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0040"
down_revision: str | None = "20261129_0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = (
    "ledger_import_lots(bigint, text, timestamptz, uuid, uuid[], bigint[], text[], bigint[],"
    " timestamptz[], timestamptz[])"
)
NEW = (
    "ledger_import_lots(bigint, text, timestamptz, uuid, uuid[], bigint[], text[], bigint[],"
    " timestamptz[], timestamptz[], boolean)"
)


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (ledger_import_lots(),
    # with p_row_checks and a third result column).
    op.execute(f"DROP FUNCTION {OLD}")
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW}")
    install(op.get_bind(), frozen("20261129_0010"), only=["functions/ledger_import_lots"])
