"""Reports as CSV: `?format=csv` answers a report's table, one row a line, with
the ledger head (and the instant or period) in headers rather than in the rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel

Format = Annotated[
    Literal["json", "csv"],
    Query(description="`csv` for the table, `json` (default) for all", examples=["csv"]),
]

# What an endpoint that answers CSV too declares besides its JSON model.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"amount", "currency"}:
            return value["amount"]
        return ";".join(f"{key}={item}" for key, item in value.items())
    return value


def csv_table(
    rows: Iterable[BaseModel], columns: Sequence[str], report: Any, headers: dict[str, str]
) -> Response:
    """The rows as CSV (money as its amount: the currency is the valuation's, in
    the JSON; an empty cell for null); the chain head (`report.chain_sequence`) in
    `X-Chain-Sequence` and `headers` besides."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow([_cell(values[column]) for column in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"X-Chain-Sequence": str(report.chain_sequence), **headers},
    )
