"""Shortcuts for the partner tests: onboarding a partner, its keys and rates."""

from __future__ import annotations

from datetime import UTC, datetime
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
    idempotency_key = fields.pop("idempotency_key", "auto")
    body = {
        "order_id": fields.pop("order_id", None) or unique("po"),
        "member": member,
        "total": {"amount": total, "currency": fields.pop("currency", "EUR")},
        "paid_at": fields.pop("paid_at", datetime.now(UTC).isoformat()),
        **fields,
    }
    return await api.post("/v1/partner/orders", body, key=key, idempotency_key=idempotency_key)


# -- shortcuts of the partner feature tests (appended) ----------------------------------------


def problem(response: httpx.Response) -> tuple[int, str | None]:
    """(status, error code) of an answer; the code is None for a non-problem body."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, None
    return response.status_code, body.get("code") if isinstance(body, dict) else None


def instant(value: str) -> Any:
    """An RFC 3339 timestamp from a response, as an aware datetime."""
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def partner_with_key(
    api: Api,
    *scopes: str,
    roles: tuple[str, ...] = ("earn", "redeem", "convert_out", "convert_in"),
    **fields: Any,
) -> tuple[str, str]:
    """A new partner and a key of it (every partner scope unless given): (code, key)."""
    code = await onboard(api, roles=roles, **fields)
    return code, await partner_key(api, code, *scopes)


async def member_with(api: Api, points: int) -> str:
    """A new member with `points` available (a program award)."""
    member = await api.enrol()
    if points:
        awarded = await api.award(member, points)
        assert awarded.status_code == 201, awarded.text
    return member


async def get_partner(api: Api, code: str) -> dict[str, Any]:
    response = await api.get(f"/v1/partners/{code}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def earned(api: Api, key: str, member: str, total: str, **fields: Any) -> dict[str, Any]:
    """A partner order that must be accepted; its answer."""
    response = await partner_order(api, key, member, total, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def redeem_at(api: Api, key: str, member: str, points: int, **fields: Any) -> httpx.Response:
    body = {
        "member": member,
        "points": points,
        "reference": fields.pop("reference", unique("rcpt")),
        **fields,
    }
    return await api.post("/v1/partner/redemptions", body, key=key)


async def convert_out(api: Api, member: str, code: str, points: int, **fields: Any) -> httpx.Response:
    key = fields.pop("key", None)
    body = {"partner": code, "points": points, "partner_member_id": fields.pop("partner_member_id", "PM-1")}
    return await api.post(f"/v1/members/{member}/conversions", {**body, **fields}, key=key)


async def convert_in(api: Api, key: str, member: str, units: int) -> httpx.Response:
    return await api.post(
        "/v1/partner/conversions",
        {"member": member, "partner_units": units, "reference": unique("xfer")},
        key=key,
    )


def period(hours: float = 1) -> dict[str, str]:
    """?from=&to= around now, `hours` either side."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(hours=hours)).isoformat(),
        "to": (now + timedelta(hours=hours)).isoformat(),
    }


async def settlement_of(api: Api, code: str, key: str | None = None, **window: str) -> dict[str, Any]:
    """The settlement of [from, to) (default: an hour around now), by admin or by a partner key."""
    window = window or period()
    path = "/v1/partner/settlement" if key else f"/v1/partners/{code}/settlement"
    response = await api.get(path, key=key, **window)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_job(api: Api, name: str, as_of: Any = None) -> dict[str, Any]:
    body = None if as_of is None else {"as_of": as_of.isoformat()}
    response = await api.client.post(f"/v1/jobs/{name}", json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    summary: dict[str, Any] = response.json()
    return summary
