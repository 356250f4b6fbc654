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
    "importRows",
    "createMemberEvent",
    "setMemberTier",
    "keepMemberTier",
    "createApiKey",
    "createWebhook",
    "updateWebhook",
    "replayWebhook",
    "createPartner",
    "updatePartner",
    "createPartnerRate",
    "createPartnerFunding",
    "createPartnerOrder",
    "previewPartnerOrder",
    "createPartnerOrderRefund",
    "createPartnerRedemption",
    "reversePartnerRedemption",
    "createPartnerConversion",
    "createDonation",
    "createConversion",
    "confirmPartnerConversion",
    "rejectPartnerConversion",
    "closePartnerStatement",
    "payPartnerStatement",
    "changeMemberStatus",
    "closeMember",
    "approveAward",
    "rejectAward",
    "createProgram",
    "eraseMember",  # last: the example member is gone after it
]
# The examples that meet a business rule on this path: the tier it would keep was
# just set by an operator (setMemberTier's example), so it has no term to extend;
# the statement example's period ended before the example partner was created.
EXPECTED_PROBLEMS = {
    "keepMemberTier": (422, "not_eligible"),
    "closePartnerStatement": (409, "period_closed"),
    "payPartnerStatement": (404, "statement_not_found"),  # so no statement to pay
    # the examples' rules ask for no approvals: the example id names none
    "approveAward": (404, "approval_not_found"),
    "rejectAward": (404, "approval_not_found"),
}
# Whose partner key calls each /v1/partner/ example (the conversion out example is
# to the airline partner); the funding example funds a prepaid partner.
PARTNER_OF = {"confirmPartnerConversion": "sky-air", "rejectPartnerConversion": "sky-air"}
PATH_OVERRIDES = {"createPartnerFunding": {"code": "tea-house"}, "importRows": {"kind": "lots"}}


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
    made: dict[str, str] = {
        "member": "cust-10042",
        "order_id": "o-1001",
        "name": "activate-pending",
        "code": "coffee-co",
        "statement_id": "0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d",
        "approval_id": "0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d",
    }
    partner_keys = await _example_partners(api)
    answers: dict[str, tuple[int, str | None]] = {}
    for operation_id in ORDER:
        method, path, operation = ops[operation_id]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        if operation_id == "releaseHold":  # the example hold was captured: release a fresh one
            hold = await api.post("/v1/members/cust-10042/holds", {"points": 10})
            made["hold_id"] = hold.json()["hold_id"]
        if operation_id == "createPartnerOrder":  # the example partner's rates and key
            await _price_coffee_co(api, partner_keys)
        if operation_id == "rejectPartnerConversion":  # the example one was confirmed: a fresh one
            fresh = await api.post(
                "/v1/members/cust-10042/conversions",
                {"partner": "sky-air", "points": 1000, "partner_member_id": "SKY-1"},
            )
            made["conversion_id"] = fresh.json()["id"]
        url = path.format(**{**made, **PATH_OVERRIDES.get(operation_id, {})})
        key = api.key
        if operation_id == "createProgram":
            key = BOOTSTRAP_KEY
        elif path.startswith("/v1/partner/"):
            key = partner_keys[PARTNER_OF.get(operation_id, "coffee-co")]
        headers = {"Authorization": f"Bearer {key}"}
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
        if operation_id == "createPartnerRedemption":
            made["redemption_id"] = body["id"]
        if operation_id == "createConversion":
            made["conversion_id"] = body["id"]
    failures = {
        op: answer
        for op, answer in answers.items()
        if answer[0] >= 400 and EXPECTED_PROBLEMS.get(op) != answer
    }
    assert failures == {}


async def _example_partners(api: Api) -> dict[str, str]:
    """The partners the examples name besides coffee-co (which createPartner's example
    makes): an airline for conversions, a charity for donations, a prepaid tea house
    for funding; each with its rates and a partner key."""
    keys: dict[str, str] = {}
    partners: dict[str, tuple[list[str], str, list[dict[str, Any]]]] = {
        "sky-air": (
            ["convert_out"],
            "postpaid",
            [{"kind": "convert_out", "partner_units_per_point": "0.5", "min_points": 1000, "increment": 500}],
        ),
        "red-cross": (["donation"], "postpaid", [{"kind": "redeem", "price_per_point": "0.01"}]),
        "tea-house": (["earn"], "prepaid", []),
    }
    for code, (roles, billing, rates) in partners.items():
        created = await api.post(
            "/v1/partners",
            {"code": code, "name": code, "roles": roles, "billing": billing, "currency": "EUR"},
            idempotency_key=None,
        )
        assert created.status_code == 201, created.text
        for rate in rates:
            added = await api.post(f"/v1/partners/{code}/rates", rate, idempotency_key=None)
            assert added.status_code == 201, added.text
        keys[code] = await _partner_key(api, code)
    return keys


async def _partner_key(api: Api, code: str) -> str:
    response = await api.post(
        "/v1/api-keys",
        {"name": code, "scopes": ["partner:earn", "partner:redeem", "partner:convert"], "partner": code},
        idempotency_key=None,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def _price_coffee_co(api: Api, keys: dict[str, str]) -> None:
    """coffee-co (made by the createPartner example, its earn rate by the rate example):
    its other rates, and its key. cust-10042 gets points to spend and convert."""
    for rate in (
        {"kind": "redeem", "price_per_point": "0.008"},
        {"kind": "convert_in", "partner_units_per_point": "2"},
    ):
        added = await api.post("/v1/partners/coffee-co/rates", rate, idempotency_key=None)
        assert added.status_code == 201, added.text
    keys["coffee-co"] = await _partner_key(api, "coffee-co")
    awarded = await api.award("cust-10042", 5000)
    assert awarded.status_code == 201, awarded.text
