"""report lot versions by day: report_lot and report_lot_use keep each lot's and
use's state at the end of every rolled day it changed on (a `day` column in their
keys), not only at the last rolled day's end, so that a report at an instant
inside an earlier rolled day starts from its members' lots at the end of the day
before it. Rollups rolled before this revision have no such versions: they are
dropped, and the job's next run rolls the days again from the ledger.

Revision ID: 20261129_0030
Revises: 20261129_0022
Create Date: 2026-11-29 15:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0030"
down_revision: str | None = "20261129_0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUPS = ("report_day_figure", "report_member_day", "report_lot", "report_lot_use", "report_rollup")


def _forget_rollups() -> None:
    for table in ROLLUPS:
        op.execute(f"DELETE FROM {table}")


def upgrade() -> None:
    _forget_rollups()
    op.add_column("report_lot", sa.Column("day", sa.Date(), nullable=False))
    op.drop_constraint("pk_report_lot", "report_lot", type_="primary")
    op.create_primary_key("pk_report_lot", "report_lot", ["program_id", "member_id", "seq", "day"])
    op.add_column("report_lot_use", sa.Column("day", sa.Date(), nullable=False))
    op.drop_constraint("pk_report_lot_use", "report_lot_use", type_="primary")
    op.create_primary_key(
        "pk_report_lot_use", "report_lot_use", ["program_id", "member_id", "entry_id", "seq", "day"]
    )


def downgrade() -> None:
    _forget_rollups()
    op.drop_constraint("pk_report_lot_use", "report_lot_use", type_="primary")
    op.drop_column("report_lot_use", "day")
    op.create_primary_key(
        "pk_report_lot_use", "report_lot_use", ["program_id", "member_id", "entry_id", "seq"]
    )
    op.drop_constraint("pk_report_lot", "report_lot", type_="primary")
    op.drop_column("report_lot", "day")
    op.create_primary_key("pk_report_lot", "report_lot", ["program_id", "member_id", "seq"])
