"""The rules module never reads the clock: callers pass every instant in; and the
import contracts that keep it pure, and the layers in order, cover every module."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import app
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


def _contract(name_starts: str) -> dict[str, object]:
    config = tomllib.loads((Path(app.__file__).parent.parent / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if str(c["name"]).startswith(name_starts)]
    return found


def _app_modules() -> set[str]:
    return {f"app.{module.name}" for module in pkgutil.iter_modules(app.__path__)}


def test_the_purity_contract_forbids_every_other_app_module() -> None:
    # lint-imports checks the contract; this checks the contract names everything,
    # so a package added later is forbidden to the rules without anyone remembering.
    forbidden = {str(m) for m in _contract("app.rules is pure")["forbidden_modules"]}  # type: ignore[attr-defined]
    assert _app_modules() - {"app.rules"} - forbidden == set()


def test_the_layers_contract_places_every_app_module() -> None:
    layers = [str(layer) for layer in _contract("Layers")["layers"]]  # type: ignore[attr-defined]
    placed = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    assert _app_modules() - placed == set()
