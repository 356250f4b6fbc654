"""What an import takes and answers: the rows of each kind, the request over
HTTP, and the summary (the same from the CLI and over HTTP)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.fields import ExternalId, Instant, Metadata, Money, ShortText
from app.orders.schemas import OrderLineIn

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


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberRow(_Row):
    """A member of the legacy program."""

    external_id: ExternalId
    enrolled_at: Instant | None = None
    birthday: date | None = None
    metadata: Metadata | None = None
    referred_by: ExternalId | None = None


class LotRow(_Row):
    """What is left of one credit of points in the legacy program."""

    member: ExternalId
    lot_ref: ShortText
    points: int = Field(gt=0, le=2**53)
    earned_at: Instant
    expires_at: Instant | None = None


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
    dry_run: bool = Field(
        default=False, description="validate every row and report what would be written; write nothing"
    )
    all_or_nothing: bool = Field(
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
