"""quick_lot(), the shortcut that reads a well-formed lot row without pydantic,
held to LotRow: whatever row it accepts, LotRow accepts with the same values
(the same instants, offsets included), and it leaves every row LotRow refuses
to LotRow. No database: the rows are generated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.imports.schemas import Lot, LotRow, quick_lot
from app.imports.service import _clean

WELL_FORMED = {
    "member": "cust-10042",
    "lot_ref": "L-778812",
    "points": 1200,
    "earned_at": "2026-03-14T09:30:00Z",
    "expires_at": "2027-03-31T23:59:59.5+02:00",
}


def model_lot(raw: Any) -> Lot | None:
    """What the import makes of a row without the shortcut (None: refused)."""
    try:
        row = LotRow.model_validate(_clean("lots", raw))
    except ValidationError:
        return None
    return Lot(row.member, row.lot_ref, row.points, row.earned_at, row.expires_at)


def same(quick: Lot, model: Lot) -> bool:
    def instant(a: datetime | None, b: datetime | None) -> bool:
        return a == b if a is None or b is None else a == b and a.utcoffset() == b.utcoffset()

    return (
        (quick.member, quick.lot_ref, quick.points) == (model.member, model.lot_ref, model.points)
        and type(quick.points) is int
        and instant(quick.earned_at, model.earned_at)
        and instant(quick.expires_at, model.expires_at)
    )


def check(raw: Any) -> None:
    quick = quick_lot(raw)
    if quick is not None:
        model = model_lot(raw)
        assert model is not None, f"the shortcut took a row LotRow refuses: {raw!r}"
        assert same(quick, model), f"{raw!r}: {quick!r} against {model!r}"


def test_the_common_row_takes_the_shortcut() -> None:
    # the rows of an exported file: every shape the shortcut is for
    for raw in (
        WELL_FORMED,
        {**WELL_FORMED, "points": "1200"},
        {**WELL_FORMED, "expires_at": ""},
        {k: v for k, v in WELL_FORMED.items() if k != "expires_at"},
        {**WELL_FORMED, "earned_at": "2026-03-14T09:30:00.123456-05:30", "note": ""},
    ):
        quick = quick_lot(raw)
        assert quick is not None, raw
        model = model_lot(raw)
        assert model is not None
        assert same(quick, model)


@pytest.mark.parametrize(
    "change",
    [
        {"member": " cust-1"},
        {"member": "cust 1"},
        {"member": "é"},
        {"member": "x" * 129},
        {"lot_ref": "L-1 "},
        {"lot_ref": "Lé"},
        {"lot_ref": "L\x1f"},
        {"lot_ref": "x" * 129},
        {"lot_ref": 7},
        {"points": 0},
        {"points": -3},
        {"points": True},
        {"points": 12.0},
        {"points": "012"},
        {"points": " 12"},
        {"points": 2**53 + 1},
        {"earned_at": "2026-03-14"},
        {"earned_at": "2026-03-14T09:30:00"},
        {"earned_at": "2026-03-14t09:30:00z"},
        {"earned_at": "2026-03-14T09:30:00.1234567Z"},
        {"earned_at": "2026-03-14T24:00:00Z"},
        {"earned_at": "2026-02-30T09:30:00Z"},
        {"earned_at": "1899-12-31T23:59:59Z"},
        {"earned_at": "9000-01-01T00:00:00Z"},
        {"earned_at": "2026-03-14T09:30:00+15:00"},
        {"earned_at": "٢٠٢٦-03-14T09:30:00Z"},
        {"earned_at": 1773480600},
        {"expires_at": "soon"},
        {"extra": "x"},
    ],
)
def test_anything_unusual_is_left_to_the_model(change: dict[str, Any]) -> None:
    raw = {**WELL_FORMED, **change}
    assert quick_lot(raw) is None
    check(raw)


def test_not_an_object_is_left_to_the_model() -> None:
    rows: tuple[Any, ...] = (None, [], "member", 3, {"member": "a"})
    for raw in rows:
        assert quick_lot(raw) is None


text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "cust-1", "L-1", "x" * 128, "x" * 129]),
)
# mostly what the shortcut takes, near its edges: ids of the allowed characters
# up to past their length, references of ASCII with spaces, control characters
# and accents about, whole numbers as numbers and as text, instants of every zone
member = st.one_of(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,130}\Z"), text)
reference = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x1C, max_codepoint=0x7F), min_size=0, max_size=130),
    st.text(alphabet="L-1 \t\u00a0\u00e9\u0301\u2028", max_size=6),
    text,
)
points = st.one_of(
    st.integers(min_value=-5, max_value=2**54),
    st.integers(min_value=-10, max_value=2**54).map(str),
    st.booleans(),
    st.floats(),
    text,
)
zoned = st.datetimes(timezones=st.timezones())
instant = st.one_of(
    zoned.map(lambda d: d.isoformat()),
    zoned.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    zoned.map(lambda d: d.isoformat(timespec="milliseconds")),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2})?(\.[0-9]{1,8})?"
        r"([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z"
    ),
    text,
    st.integers(),
)
value = {
    "member": member,
    "lot_ref": reference,
    "points": points,
    "earned_at": instant,
    "expires_at": st.one_of(st.none(), st.just(""), instant),
}
rows = st.fixed_dictionaries(
    {},
    optional={
        **value,
        "extra": st.one_of(st.just(""), st.none(), text),
    },
)


@settings(max_examples=1000, deadline=None)
@given(rows)
def test_the_shortcut_agrees_with_the_model(raw: dict[str, Any]) -> None:
    check(raw)


# rows the shortcut should mostly take, each field close to its edges
near = {
    "member": st.from_regex(r"\A[A-Za-z0-9 ][A-Za-z0-9._:@+\- ]{0,130}\Z"),
    "lot_ref": st.text(alphabet=st.characters(min_codepoint=0x1F, max_codepoint=0x7F), max_size=130),
    "points": st.one_of(st.integers(min_value=0, max_value=2**53 + 2), st.integers(min_value=0).map(str)),
    "earned_at": st.datetimes(
        min_value=datetime(1899, 12, 30),
        max_value=datetime(9000, 1, 2),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=9, minutes=30))]
        ),
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
}


@settings(max_examples=1000, deadline=None)
@given(st.fixed_dictionaries(value))
def test_the_shortcut_agrees_on_rows_with_every_field(raw: dict[str, Any]) -> None:
    check(raw)


@settings(max_examples=1000, deadline=None)
@given(st.fixed_dictionaries(near, optional={"expires_at": near["earned_at"]}))
def test_the_shortcut_agrees_near_its_edges(raw: dict[str, Any]) -> None:
    check(raw)
