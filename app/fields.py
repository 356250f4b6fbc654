"""Field types shared by the request and response models."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    model_validator,
)

from app.rules.document import Amount

MAX_POINTS = 2**63 - 1
MAX_METADATA_BYTES = 8_192
# Instants a request may name: enough for any loyalty history and any expiry, and
# far enough inside datetime's range that a year of arithmetic never leaves it.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


# RFC 3339: a date, "T", a time with seconds (a fraction if any) and an offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_text(value: Any) -> Any:
    """Instants are RFC 3339 strings; never a number read as Unix time, nor a date."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, like 2026-11-24T10:00:00Z")
    return value


def _within_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value


# An RFC 3339 instant with its offset, in the supported range.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_within_range)]

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

# The patterns and the length of ids and labels, named for the code that reads
# rows without pydantic (app/imports: quick_lot() and the import's lookups).
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]*$"
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ID_MAX_LENGTH = 128

ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=EXTERNAL_ID_PATTERN,
        description="the caller's own id for the member (letters, digits and . _ : @ + -)",
        examples=["cust-10042"],
    ),
]

# A member named in a URL path, by external id; a rules version likewise.
MemberPath = Annotated[ExternalId, Path(description="the member's external id")]
RulesVersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="rules version number", examples=[3])]


def _nfc(value: str) -> str:
    # The composed and the decomposed "é" look alike and differ byte for byte: two
    # order ids that earn twice. Ids and labels are compared as sent, so they must
    # come in one normal form.
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError("must be in Unicode normal form NFC")
    return value


# Free text stored in the ledger: no control characters (PostgreSQL text can't hold NUL).
Text = Annotated[str, Field(min_length=1, max_length=500, pattern=NO_CONTROL_PATTERN)]
# Ids and labels the caller chooses (order, refund and reference ids, SKUs,
# categories, channels): no control characters, and in NFC.
ShortText = Annotated[
    str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_CONTROL_PATTERN), AfterValidator(_nfc)
]


def storable_metadata(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Metadata the ledger can keep: no NUL, at most MAX_METADATA_BYTES of JSON."""
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in encoded:
        raise ValueError("must not contain NUL characters")
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


Metadata = Annotated[
    dict[str, JsonValue],
    AfterValidator(storable_metadata),
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

    amount: Amount = Field(
        description="decimal string, with at most as many decimals as the currency has (2 for EUR, "
        "0 for JPY, 3 for KWD)",
        examples=["120.50"],
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])

    @model_validator(mode="after")
    def _minor_units(self) -> Money:
        places = minor_units(self.currency)
        exponent = self.amount.as_tuple().exponent
        if (
            isinstance(exponent, int)
            and -exponent > places
            and self.amount != self.amount.quantize(Decimal(1).scaleb(-places))
        ):
            raise ValueError(f"{self.currency} amounts have at most {places} decimals")
        return self


# ISO 4217 currencies whose minor unit is not a hundredth (the rest have 2 decimals).
_MINOR_UNITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
         "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


def minor_units(currency: str) -> int:
    """How many decimals the currency's amounts have (ISO 4217)."""
    return _MINOR_UNITS.get(currency, 2)


def money(amount: Decimal, currency: str) -> Money:
    """Money rounded for people: the currency's own decimals (half-even), no exponent."""
    return Money(amount=amount.quantize(Decimal(1).scaleb(-minor_units(currency))), currency=currency)
