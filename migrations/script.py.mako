"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
from app.sql import frozen, install

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
% if upgrades:
    ${upgrades}
% endif
    # The SQL objects this revision changes: frozen copies of app/sql/ written by
    # migrations/new_revision.py into migrations/sql/<revision>/ (none: nothing to do).
    install(op.get_bind(), frozen(revision))


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
