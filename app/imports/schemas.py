"""What an import takes and answers: the rows of each kind, the request over
HTTP, and the summary (the same from the CLI and over HTTP)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.fields import (
    EARLIEST,
    EXTERNAL_ID_PATTERN,
    ID_MAX_LENGTH,
    LATEST,
    ExternalId,
    Instant,
    Metadata,
    Money,
    ShortText,
)
from app.orders.schemas import OrderLineIn
from app.rules.document import CalendarDate, StrictBool

ImportKind = Literal["members", "lots", "orders", "tiers"]
IMPORT_KINDS: tuple[ImportKind, ...] = ("members", "lots", "orders", "tiers")

# At most this many rows in one HTTP call (a file from the CLI has no limit: it
# is written in chunks).
MAX_HTTP_ROWS = 10_000

Source = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$",
    description="the legacy system the rows come from; rows are keyed by it and their own reference, "
    "so sending them again is a no-op",
    examples=["legacy-crm"],
)


# The most points one imported lot may hold (a double holds every whole number up to it).
MAX_LOT_POINTS = 2**53


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberRow(_Row):
    """A member of the legacy program."""

    external_id: ExternalId
    enrolled_at: Instant | None = None
    birthday: CalendarDate | None = None
    metadata: Metadata | None = None
    referred_by: ExternalId | None = None


class LotRow(_Row):
    """What is left of one credit of points in the legacy program."""

    member: ExternalId
    lot_ref: ShortText
    points: int = Field(gt=0, le=MAX_LOT_POINTS)
    earned_at: Instant
    expires_at: Instant | None = None


class Lot(NamedTuple):
    """A valid lot row, as the checks read it (a LotRow's fields, in a plain tuple:
    a million of them are read by an import)."""

    member: str
    lot_ref: str
    points: int
    earned_at: datetime
    expires_at: datetime | None


LOT_FIELDS = frozenset(LotRow.model_fields)
_MEMBER_ID = re.compile(EXTERNAL_ID_PATTERN)
_POINTS = re.compile(r"[1-9][0-9]{0,15}")
# The common shape of an RFC 3339 instant: ASCII digits, at most microseconds, `Z`
# or an offset of at most 14 hours (every real zone's).
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])"
)


def is_member_id(value: str) -> bool:
    """Whether `value` is an ExternalId as pydantic reads one (its pattern and length)."""
    return len(value) <= ID_MAX_LENGTH and _MEMBER_ID.fullmatch(value) is not None


def _quick_instant(value: Any) -> datetime | None:
    if type(value) is not str or not _INSTANT.fullmatch(value):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if EARLIEST <= instant < LATEST else None


def quick_lot(raw: Any) -> Lot | None:
    """The lot a row of the common, well-formed shape holds, without pydantic: each
    check LotRow makes, made only where it is cheap to be sure (ASCII references
    without surrounding spaces, whole numbers of points, instants to the
    microsecond with a usual offset). Any other row gives None and is left to
    LotRow, which decides it and words its errors: this is a shortcut for the
    million rows of an import (tests/imports/test_quick_lot.py holds it to
    LotRow's answers), never a second opinion."""
    if type(raw) is not dict:
        return None
    for key, value in raw.items():
        if key not in LOT_FIELDS and value is not None and value != "":
            return None
    member, lot_ref, points = raw.get("member"), raw.get("lot_ref"), raw.get("points")
    if type(member) is not str or not is_member_id(member):
        return None
    if (
        type(lot_ref) is not str
        or not 0 < len(lot_ref) <= ID_MAX_LENGTH
        or not lot_ref.isascii()
        or not lot_ref.isprintable()
        or lot_ref != lot_ref.strip()
    ):
        return None
    if type(points) is str and _POINTS.fullmatch(points):
        points = int(points)
    if type(points) is not int or not 0 < points <= MAX_LOT_POINTS:
        return None
    earned_at = _quick_instant(raw.get("earned_at"))
    if earned_at is None:
        return None
    expires = raw.get("expires_at")
    if expires is None or expires == "":
        return Lot(member, lot_ref, points, earned_at, None)
    expires_at = _quick_instant(expires)
    if expires_at is None:
        return None
    return Lot(member, lot_ref, points, earned_at, expires_at)


class OrderRow(_Row):
    """A past order, for tier windows and segments: it earns nothing."""

    member: ExternalId
    order_id: ShortText
    total: Money
    paid_at: Instant
    lines: list[OrderLineIn] | None = None
    channel: ShortText | None = None


class TierRow(_Row):
    """A member's tier in the legacy program."""

    member: ExternalId
    tier: str = Field(min_length=1, max_length=64)
    since: Instant
    term_ends_at: Instant | None = None


ROW_MODELS: dict[ImportKind, type[_Row]] = {
    "members": MemberRow,
    "lots": LotRow,
    "orders": OrderRow,
    "tiers": TierRow,
}


class ImportIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "legacy-crm",
                    "rows": [
                        {
                            "member": "cust-10042",
                            "lot_ref": "L-778812",
                            "points": 1200,
                            "earned_at": "2026-03-14T09:30:00Z",
                            "expires_at": "2027-03-31T23:59:59Z",
                        }
                    ],
                    "dry_run": False,
                    "expect_rows": 1,
                    "expect_points": 1200,
                }
            ]
        },
    )

    source: str = Source
    rows: list[dict[str, JsonValue]] = Field(
        description="the rows, each an object with the kind's fields (docs/imports.md): members "
        "`external_id, enrolled_at?, birthday?, metadata?, referred_by?`; lots `member, lot_ref, "
        "points, earned_at, expires_at?`; orders `member, order_id, total, paid_at, lines?, "
        "channel?`; tiers `member, tier, since, term_ends_at?`; at most 10,000 a call",
        examples=[[{"member": "cust-10042", "lot_ref": "L-778812", "points": 1200}]],
    )
    dry_run: StrictBool = Field(
        default=False, description="validate every row and report what would be written; write nothing"
    )
    all_or_nothing: StrictBool = Field(
        default=False, description="import nothing when any row is invalid (default: the valid rows)"
    )
    expect_rows: int | None = Field(
        default=None,
        ge=0,
        description="control total: the number of rows; a mismatch refuses the import",
        examples=[1],
    )
    expect_points: int | None = Field(
        default=None,
        ge=0,
        description="control total: the points of every row (lots); a mismatch refuses the import",
        examples=[1200],
    )


class RowError(BaseModel):
    row: int = Field(description="the row's number, from 1 (a file's header is not a row)", examples=[7])
    field: str = Field(description="the field at fault, or `row` for the whole row", examples=["expires_at"])
    code: str = Field(
        description="stable code: invalid, missing, unknown_field, member_not_found, "
        "referrer_not_found, member_exists_in_file, duplicate_ref, lot_expired, "
        "expires_before_earned, in_future, tier_unknown",
        examples=["lot_expired"],
    )
    message: str = Field(description="what is wrong", examples=["the lot expired on 2026-01-31T23:59:59Z"])


class ImportSummary(BaseModel):
    kind: ImportKind = Field(description="what was imported", examples=["lots"])
    source: str = Field(description="the legacy system the rows came from", examples=["legacy-crm"])
    dry_run: bool = Field(
        description="true: nothing was written; the counts say what would be", examples=[False]
    )
    rows: int = Field(description="rows read", examples=[1000])
    imported: int = Field(description="rows written (a dry run: that would be)", examples=[990])
    skipped: int = Field(description="rows already imported (the same source and reference)", examples=[0])
    invalid: int = Field(description="rows refused: each is in `errors`", examples=[10])
    points: int = Field(description="points written (lots; a dry run: that would be)", examples=[125000])
    members: int = Field(description="members the written rows concern", examples=[400])
    points_by_expiry_month: dict[str, int] = Field(
        description="points written by the month they expire (UTC, YYYY-MM; `never`)",
        examples=[{"2027-03": 100000, "never": 25000}],
    )
    errors: list[RowError] = Field(description="every invalid row, in row order")

    def counts(self) -> dict[str, Any]:
        """The summary without its errors: the `import.completed` event's data."""
        return self.model_dump(mode="json", exclude={"errors", "dry_run"})
