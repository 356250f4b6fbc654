"""Shortcuts for the partner tests: onboarding a partner, its keys and rates."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Api, unique


async def onboard(
    api: Api,
    *,
    roles: tuple[str, ...] = ("earn", "redeem", "convert_out", "convert_in"),
    billing: str = "postpaid",
    currency: str = "EUR",
    **fields: Any,
) -> str:
    """A new partner of the program; its code."""
    code = fields.pop("code", None) or unique("pa").lower()
    response = await api.post(
        "/v1/partners",
        {
            "code": code,
            "name": f"Partner {code}",
            "roles": list(roles),
            "billing": billing,
            "currency": currency,
            **fields,
        },
        idempotency_key=None,
    )
    assert response.status_code == 201, response.text
    return code


async def partner_key(api: Api, code: str, *scopes: str) -> str:
    scopes = scopes or ("partner:earn", "partner:redeem", "partner:convert")
    response = await api.post(
        "/v1/api-keys",
        {"name": f"{code} till", "scopes": list(scopes), "partner": code},
        idempotency_key=None,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def add_rate(api: Api, code: str, kind: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/partners/{code}/rates", {"kind": kind, **fields}, idempotency_key=None)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def fund(
    api: Api, code: str, points: int, amount: str = "10.00", currency: str = "EUR"
) -> httpx.Response:
    return await api.post(
        f"/v1/partners/{code}/funding",
        {"points": points, "price": {"amount": amount, "currency": currency}, "reference": unique("inv")},
    )


async def partner_earning(api: Api, code: str, points: int = 1, per: str = "1", **earn: Any) -> int:
    """Make the active rules give partner `code`'s orders `points` per `per`."""
    section = {"base": {"points": points, "per": per, "rounding": "floor"}, **earn}
    return await api.use_rules(
        {"earn": {"base": {"points": 1, "per": "1", "rounding": "floor"}}, "partner_earn": {code: section}}
    )


async def partner_order(api: Api, key: str, member: str, total: str, **fields: Any) -> httpx.Response:
    from datetime import UTC, datetime

    body = {
        "order_id": fields.pop("order_id", None) or unique("po"),
        "member": member,
        "total": {"amount": total, "currency": fields.pop("currency", "EUR")},
        "paid_at": fields.pop("paid_at", datetime.now(UTC).isoformat()),
        **fields,
    }
    return await api.post(
        "/v1/partner/orders", body, key=key, idempotency_key=fields.pop("idempotency_key", "auto")
    )
