"""Create a migration revision, with frozen copies of the SQL objects it changes.

    uv run python migrations/new_revision.py "add a column to member"     # or: make revision m="..."

1. Compares every live definition in app/sql/ with its latest frozen copy in
   migrations/sql/<revision>/ (revisions sort by their dated ids) and copies each
   new or changed one into migrations/sql/<new revision>/<kind>/<name>.sql.
2. Writes the revision file (alembic's template, migrations/script.py.mako); its
   upgrade() installs that folder with app.sql.install(). Table changes are yours
   to add (`--autogenerate` compares the models with a database at head: pass
   `--autogenerate` and set LEDGER_DATABASE_URL to one).
3. An object removed from app/sql/ is listed: write its DROP in the revision.

Then run the tests: tests/test_sql_definitions.py proves that upgrade head installs
exactly what app/sql/ says.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.sql import LIVE, SqlObject, frozen, migrations_dir, objects  # noqa: E402


def latest_frozen() -> dict[str, SqlObject]:
    """Each object's newest frozen copy, by object key."""
    found: dict[str, SqlObject] = {}
    folders = sorted(path for path in (migrations_dir() / "sql").iterdir() if path.is_dir())
    for folder in folders:  # later revisions overwrite earlier ones
        for obj in objects(folder):
            found[obj.key] = obj
    return found


def changed_objects() -> tuple[list[SqlObject], list[str]]:
    """Live objects that differ from their latest frozen copy, and keys frozen but no longer live."""
    frozen_now = latest_frozen()
    live = objects(LIVE)
    changed = [
        obj
        for obj in live
        if obj.key not in frozen_now or frozen_now[obj.key].definition() != obj.definition()
    ]
    removed = sorted(set(frozen_now) - {obj.key for obj in live})
    return changed, removed


def next_revision_id(taken: set[str], today: dt.date) -> str:
    """Revision ids are the date and a counter (20261128_0001): they sort in order.
    The counter follows the day's highest one, not the first gap: frozen copies are
    read in the order of their revision ids, so a new id must sort after every
    existing one (helpers on branches take numbers ahead, leaving gaps)."""
    stem = today.strftime("%Y%m%d")
    numbers = [int(rev[len(stem) + 1 :]) for rev in taken if rev.startswith(f"{stem}_")]
    return f"{stem}_{max(numbers, default=0) + 1:04d}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("message", help="what the revision does")
    parser.add_argument("--autogenerate", action="store_true", help="let alembic compare models and schema")
    args = parser.parse_args()

    from alembic import command
    from alembic.script import ScriptDirectory

    from app.cli import alembic_config

    # Autogenerate compares with a real database; otherwise the URL is never used.
    url = os.environ.get("LEDGER_DATABASE_URL", "") if args.autogenerate else "postgresql://unused/none"
    if not url:
        parser.error("--autogenerate needs LEDGER_DATABASE_URL: a database at the current head")
    config = alembic_config(url)
    taken = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}  # type: ignore[arg-type]
    revision = next_revision_id(taken, dt.datetime.now(dt.UTC).date())

    changed, removed = changed_objects()
    for obj in changed:
        target = frozen(revision) / obj.kind / obj.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(obj.path, target)
        print(f"froze {obj.key} into {target.relative_to(ROOT)}")
    command.revision(
        config,  # type: ignore[arg-type]
        message=args.message,
        rev_id=revision,
        autogenerate=args.autogenerate,
    )
    if not changed:
        print("no SQL object changed: the revision has no frozen copies to install")
    for key in removed:
        print(f"{key} was removed from app/sql/: write its DROP in revision {revision} by hand")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
