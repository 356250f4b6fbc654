"""ledger_lot_changes() takes a program and a window of recorded time, and answers
what the reports' lot replay needs (the entry's kind and recorded_at, the kind a
reversal reverses, the last posting's id): the reports read it instead of
restating its body.

Revision ID: 20261130_0002
Revises: 20261130_0001
Create Date: 2026-11-30 04:48:01.989162+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261130_0002"
down_revision: str | None = "20261130_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = "ledger_lot_changes(bigint, timestamptz, timestamptz)"


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (ledger_lot_changes(),
    # with parameters and more result columns: a new signature, so the old one goes).
    op.execute("DROP FUNCTION ledger_lot_changes()")
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW}")
    install(op.get_bind(), frozen("20261129_0003"), only=["functions/ledger_lot_changes"])
