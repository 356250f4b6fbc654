"""Every request example in openapi.yaml is valid against the contract: sent as
written (path parameters filled with things the earlier examples made), each one
succeeds, or answers the business error the contract documents for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import BOOTSTRAP_KEY, Api, unique

SPEC = yaml.safe_load((Path(__file__).resolve().parent.parent / "openapi.yaml").read_text())

# The operations with a request body, in an order where each example finds what it
# needs (the member it names, the order it refunds...).
ORDER = [
    "createRulesVersion",
    "createMember",
    "updateMember",
    "createAward",
    "createRedemption",
    "createTransfer",
    "reverseEntry",
    "createHold",
    "captureHold",
    "releaseHold",
    "createOrder",
    "previewOrder",
    "createOrderRefund",
    "simulateRulesVersion",
    "runJob",
    "createMemberEvent",
    "setMemberTier",
    "keepMemberTier",
    "createApiKey",
    "createWebhook",
    "updateWebhook",
    "replayWebhook",
    "createProgram",
]
# The one example that meets a business rule on this path: the tier it would keep
# was just set by an operator (setMemberTier's example), so it has no term to extend.
EXPECTED_PROBLEMS = {"keepMemberTier": (422, "not_eligible")}


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    found = {}
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            if "requestBody" in operation:
                found[operation["operationId"]] = (method.upper(), path, operation)
    return found


def documented_codes(operation: dict[str, Any], status: int) -> set[str]:
    response = operation["responses"].get(str(status))
    return set() if response is None else set(re.findall(r"`([a-z_]+)`", response["description"]))


async def test_every_operation_with_a_body_is_exercised() -> None:
    assert set(operations()) == set(ORDER)


async def test_every_request_example_is_accepted(api: Api, client: httpx.AsyncClient) -> None:
    ops = operations()
    await api.enrol("cust-20077")  # the transfer example's receiver
    made: dict[str, str] = {"member": "cust-10042", "order_id": "o-1001", "name": "activate-pending"}
    answers: dict[str, tuple[int, str | None]] = {}
    for operation_id in ORDER:
        method, path, operation = ops[operation_id]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        if operation_id == "releaseHold":  # the example hold was captured: release a fresh one
            hold = await api.post("/v1/members/cust-10042/holds", {"points": 10})
            made["hold_id"] = hold.json()["hold_id"]
        url = path.format(**made)
        headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY if operation_id == 'createProgram' else api.key}"}
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
            headers["Idempotency-Key"] = unique("example")
        response = await client.request(method, url, json=example, headers=headers)
        problem = response.json().get("code") if response.status_code >= 400 else None
        answers[operation_id] = (response.status_code, problem)
        if response.status_code >= 400:
            assert problem in documented_codes(operation, response.status_code), (operation_id, response.text)
            continue
        body = response.json()
        if operation_id == "createRulesVersion":
            made["version"] = str(body["version"])
            activated = await api.post(f"/v1/rules/{body['version']}/activate", {}, idempotency_key=None)
            assert activated.status_code == 200
        if operation_id == "createRedemption":
            made["entry_id"] = body["id"]
        if operation_id == "createHold":
            made["hold_id"] = body["hold_id"]
        if operation_id == "createWebhook":
            made["webhook_id"] = body["id"]
    failures = {
        op: answer
        for op, answer in answers.items()
        if answer[0] >= 400 and EXPECTED_PROBLEMS.get(op) != answer
    }
    assert failures == {}
