"""imports from a legacy program: the `import` entry kind, the `migration` system
account, the `imported` tier change reason, ledger_import_lots(), and no
`tier.changed` event for an imported tier

Revision ID: 20261129_0010
Revises: 20261129_0008
Create Date: 2026-11-29 06:55:30.994269+00:00
"""

from collections.abc import Sequence

from alembic import op

from app.sql import frozen, install

revision: str = "20261129_0010"
down_revision: str | None = "20261129_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_journal_entry_kind_known"), "journal_entry", type_="check")
    op.create_check_constraint(
        "kind_known",
        "journal_entry",
        "kind IN ('award', 'redemption', 'transfer', 'reversal', 'earn', 'refund', 'activate', 'event',"
        " 'hold', 'capture', 'release', 'expire', 'tier_keep', 'funding', 'donation', 'conversion',"
        " 'import')",
    )
    op.drop_constraint(op.f("ck_tier_change_reason_known"), "tier_change", type_="check")
    op.create_check_constraint(
        "reason_known",
        "tier_change",
        "reason IN ('qualified', 'retained', 'downgraded', 'kept_with_points', 'override', 'imported')",
    )
    # Every program's `migration` account, where imported points come from (new
    # programs open it with the others).
    op.execute(
        "INSERT INTO account (program_id, kind) SELECT id, 'migration' FROM program"
        " ON CONFLICT (program_id, kind, partner_id) WHERE member_id IS NULL DO NOTHING"
    )
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/.
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    raise NotImplementedError("the ledger cannot be downgraded")
