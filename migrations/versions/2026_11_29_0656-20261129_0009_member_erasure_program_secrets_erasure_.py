"""member erasure: program secrets, erasure records, the event log's redaction

- program_secret: a program's named secrets, made when first needed (`erasure`:
  the HMAC key of erased members' pseudonyms; app/programs/service.py).
- member_erasure: one row per erased member (when, why, by which key, the
  closing's forfeit entry); nothing personal.
- event_log_guard(): also lets an erasure rewrite an event's `data` (in a
  transaction that set `ledger.erasure`), nothing else of it.

Self-contained: re-pointing down_revision is the only change a merge needs.

Revision ID: 20261129_0009
Revises: 20261129_0005
Create Date: 2026-11-29 06:56:55.727418+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0009"
down_revision: str | None = "20261129_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "program_secret",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_program_secret_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "name", name=op.f("pk_program_secret")),
    )
    op.create_table(
        "member_erasure",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("entry_id", sa.Uuid(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["member.program_id", "member.id"],
            name=op.f("fk_member_erasure_member_id_member"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_member_erasure_program_id_program")
        ),
        sa.PrimaryKeyConstraint("program_id", "member_id", name=op.f("pk_member_erasure")),
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (event_log_guard()).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    # event_log_guard() as it was before this revision
    install(op.get_bind(), frozen("20261128_0002"), only=["functions/event_log_guard"])
    op.drop_table("member_erasure")
    op.drop_table("program_secret")
