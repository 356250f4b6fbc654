"""The worked example in docs/orders-and-rules.md ("The rules document"), run for real."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import Api, MovableClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "orders-and-rules.md"


def readme_block(marker: str) -> Any:
    """The JSON code block that follows `<!-- marker -->` in the document."""
    text = DOC.read_text()
    found = re.search(rf"<!-- {marker} -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert found is not None, f"{DOC.name} has no block marked {marker}"
    return json.loads(found.group(1))


async def test_the_readme_worked_example_is_what_the_service_answers(api: Api, clock: MovableClock) -> None:
    # The example runs at 10:00 on 8 November 2026 in Shanghai.
    clock.offset = datetime(2026, 11, 8, 2, 0, tzinfo=UTC) - datetime.now(UTC)
    version = await api.use_rules(readme_block("example-rules"))
    member = await api.enrol("cust-1")
    order = readme_block("example-order")
    response = await api.post("/v1/orders", {**order, "member": member})
    assert response.status_code == 201, response.text
    expected = readme_block("example-result")
    result = response.json()
    assert result["breakdown"] == expected["breakdown"]
    assert result["points"] == expected["points"] == sum(line["points"] for line in expected["breakdown"])
    assert (result["status"], result["available_at"]) == (expected["status"], expected["available_at"])
    assert version == expected["rules_version"]
    shoes = await api.refund(order["order_id"], lines=[{"sku": "RUN-42", "quantity": 1}])
    assert shoes.json()["points_reversed"] == 1369
