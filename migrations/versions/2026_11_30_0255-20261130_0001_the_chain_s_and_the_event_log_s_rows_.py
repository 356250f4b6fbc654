"""the chain's and the event log's rows keep no foreign key to journal_entry

Revision ID: 20261130_0001
Revises: 20261129_0040
Create Date: 2026-11-30 02:55:21.085272+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261130_0001"
down_revision: str | None = "20261129_0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint): each references journal_entry (program_id, id) by (program_id, entry_id)
KEYS = (
    ("entry_chain", "fk_entry_chain_entry_id_journal_entry"),
    ("event_log", "fk_event_log_entry_id_journal_entry"),
)


def upgrade() -> None:
    # The chainer writes both rows for an entry it has just read, in the same
    # transaction; the journal refuses UPDATE, DELETE and TRUNCATE; `verify` names a
    # chained entry or an entry's event whose entry is missing. Each key's check
    # locked the entry's row once more (app/ledger/models.py, EntryChain).
    for table, name in KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    for table, name in KEYS:
        op.create_foreign_key(
            name,
            table,
            "journal_entry",
            ["program_id", "entry_id"],
            ["program_id", "id"],
        )
