"""the chain's and the event log's rows keep no foreign key to journal_entry or program

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

# (table, constraint, referenced table, local columns, referenced columns)
KEYS = (
    (
        "entry_chain",
        "fk_entry_chain_entry_id_journal_entry",
        "journal_entry",
        ["program_id", "entry_id"],
        ["program_id", "id"],
    ),
    (
        "event_log",
        "fk_event_log_entry_id_journal_entry",
        "journal_entry",
        ["program_id", "entry_id"],
        ["program_id", "id"],
    ),
    ("event_log", "fk_event_log_program_id_program", "program", ["program_id"], ["id"]),
)


def upgrade() -> None:
    # The chainer writes a chain row and an event for each entry it has just read,
    # in the same transaction; the journal refuses UPDATE, DELETE and TRUNCATE, and a
    # program DELETE; `verify` names a chained entry, an entry's event or an event's
    # program that is missing. Each key's check ran a query per row and locked the
    # referenced row again (app/ledger/models.py, EntryChain).
    for table, name, *_ in KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    for table, name, referenced, columns, referenced_columns in KEYS:
        op.create_foreign_key(name, table, referenced, columns, referenced_columns)
