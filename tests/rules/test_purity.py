"""The rules module never reads the clock: callers pass every instant in."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.rules

RULES_SOURCES = sorted(Path(app.rules.__file__).parent.glob("*.py"))
CLOCK_READS = (".now(", ".today(", "utcnow", "time.time", "monotonic")


def test_the_sources_are_found() -> None:
    assert {path.name for path in RULES_SOURCES} >= {
        "__init__.py",
        "document.py",
        "earning.py",
        "events.py",
        "refunds.py",
        "tiers.py",
        "tier_machine.py",
    }


@pytest.mark.parametrize("source", RULES_SOURCES, ids=lambda path: path.name)
def test_no_file_reads_the_clock(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    assert [read for read in CLOCK_READS if read in text] == []
