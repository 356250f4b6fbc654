"""Field types shared by the request and response models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from app.rules.document import Amount

MAX_POINTS = 2**63 - 1
MAX_METADATA_BYTES = 8_192
# Instants a request may name: enough for any loyalty history and any expiry, and
# far enough inside datetime's range that a year of arithmetic never leaves it.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _within_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value


# An RFC 3339 instant with its offset, in the supported range.
Instant = Annotated[AwareDatetime, AfterValidator(_within_range)]

Points = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=MAX_POINTS,
        description="a positive whole number of points (fits in 64 bits)",
        examples=[100],
    ),
]

ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]*$",
        description="the caller's own id for the member (letters, digits and . _ : @ + -)",
        examples=["cust-10042"],
    ),
]

# A member named in a URL path, by external id; a rules version likewise.
MemberPath = Annotated[ExternalId, Path(description="the member's external id")]
RulesVersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="rules version number")]

# Free text stored in the ledger: no control characters (PostgreSQL text can't hold NUL).
Text = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _storable(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in encoded:
        raise ValueError("must not contain NUL characters")
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


Metadata = Annotated[
    dict[str, JsonValue],
    AfterValidator(_storable),
    Field(
        description="free-form JSON object kept with the record (at most 8 KiB)",
        examples=[{"campaign": "spring"}],
    ),
]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class Money(BaseModel):
    """An amount of money: a decimal string and its ISO 4217 currency."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount = Field(description="decimal string, at most 4 decimal places", examples=["120.50"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])


def money(amount: Decimal, currency: str, places: int = 2) -> Money:
    """Money rounded for people: `places` decimals (half-even), no exponent."""
    return Money(amount=amount.quantize(Decimal(1).scaleb(-places)), currency=currency)
