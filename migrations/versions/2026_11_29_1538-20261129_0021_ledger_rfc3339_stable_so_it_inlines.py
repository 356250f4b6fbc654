"""ledger_rfc3339 stable, so it inlines

Revision ID: 20261129_0021
Revises: 20261129_0020
Create Date: 2026-11-29 15:38:39.790295+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0021"
down_revision: str | None = "20261129_0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/.
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    # CREATE OR REPLACE with the declaration before it (IMMUTABLE).
    install(op.get_bind(), frozen("20261128_0001"), only=["functions/ledger_rfc3339"])
