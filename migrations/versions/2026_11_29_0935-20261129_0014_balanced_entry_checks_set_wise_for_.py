"""balanced-entry checks set-wise for imports and for postings: import entries
and postings added to an entry later are checked at the end of the statement that
wrote them (ledger_check_entries_balanced()), other entries still at commit

Revision ID: 20261129_0014
Revises: 20261129_0013
Create Date: 2026-11-29 09:35:24.895687+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0014"
down_revision: str | None = "20261129_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/: the new function
    # and trigger first, then posting_balanced made statement-level (dropped and
    # created again by install()).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
