"""Input is taken as written, never guessed at: instants are RFC 3339 strings,
booleans JSON booleans, money has its currency's decimals, ids come in one Unicode
normal form, an order names each SKU once. Anything else is 422 and writes nothing."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.support import Api, entries_with_key, unique

EARN = {"earn": {"base": {"points": 1, "per": "1.00"}}}
SHOES_X3 = {
    "currency": "EUR",
    "earn": {
        "base": {"points": 1, "per": "1.00"},
        "multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}],
    },
}


def line(sku: str, category: str, price: str) -> dict[str, Any]:
    return {
        "sku": sku,
        "category": category,
        "quantity": 1,
        "unit_price": {"amount": price, "currency": "EUR"},
    }


def invalid(response: Any, field_end: str) -> None:
    assert (response.status_code, response.json()["code"]) == (422, "validation_error"), response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(field.endswith(field_end) for field in fields), fields


class TestInstants:
    async def test_unix_times_are_not_instants(self, api: Api) -> None:
        invalid(await api.post("/v1/members", {"external_id": "unix-0", "enrolled_at": 0}), "enrolled_at")
        member = await api.enrol()
        await api.use_rules({**EARN, "currency": "EUR"})
        order = await api.order(member, "10.00", paid_at=1764000000)
        invalid(order, "paid_at")

    @pytest.mark.parametrize("as_of", ["0.5", "1764000000", "2026-11-24", "2026-11-24T10:00:00", "yesterday"])
    async def test_as_of_must_be_an_rfc3339_instant(self, api: Api, as_of: str) -> None:
        member = await api.enrol()
        invalid(await api.get(f"/v1/members/{member}/balance", as_of=as_of), "as_of")

    async def test_a_future_as_of_is_422_not_now(self, api: Api) -> None:
        member = await api.enrol()
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        invalid(await api.get(f"/v1/members/{member}/balance", as_of=later), "as_of")
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert (await api.get(f"/v1/members/{member}/balance", as_of=past)).status_code == 200

    async def test_dates_are_strings_too(self, api: Api) -> None:
        invalid(await api.post("/v1/members", {"external_id": "bday", "birthday": 19900417}), "birthday")
        assert (
            await api.post("/v1/members", {"external_id": "bday", "birthday": "1990-04-17"})
        ).status_code == 201


class TestBooleans:
    @pytest.mark.parametrize("value", [0, 1, "true", None])
    async def test_rules_take_json_booleans_only(self, api: Api, value: Any) -> None:
        document = {
            **EARN,
            "earn": {
                **EARN["earn"],
                "multipliers": [{"id": "first", "factor": "2", "when": {"first_order": value}}],
            },
        }
        response = await api.post("/v1/rules", document, idempotency_key=None)
        if value is None:  # null means "no condition", as every optional field
            assert response.status_code == 201, response.text
        else:
            assert (response.status_code, response.json()["code"]) == (422, "invalid_rules"), response.text

    @pytest.mark.parametrize("option", ["dry_run", "all_or_nothing"])
    @pytest.mark.parametrize("value", [0, 1, "true", "off"])
    async def test_import_options_are_json_booleans(self, api: Api, option: str, value: Any) -> None:
        rows = [{"external_id": unique("imp")}]
        body = {"source": "legacy-crm", "rows": rows, option: value}
        invalid(await api.post("/v1/imports/members", body, idempotency_key=None), option)
        assert (await api.get(f"/v1/members/{rows[0]['external_id']}")).status_code == 404


class TestImportedDates:
    async def test_an_imported_birthday_is_a_date_string_not_a_unix_time(self, api: Api) -> None:
        numeric, written = unique("imp"), unique("imp")
        rows = [
            {"external_id": numeric, "birthday": 86400},
            {"external_id": written, "birthday": "1990-04-17"},
        ]
        response = await api.post(
            "/v1/imports/members", {"source": "legacy-crm", "rows": rows}, idempotency_key=None
        )
        assert response.status_code == 200, response.text
        assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "birthday")]
        assert (await api.get(f"/v1/members/{numeric}")).status_code == 404
        assert (await api.get(f"/v1/members/{written}")).json()["birthday"] == "1990-04-17"


class TestMoney:
    @pytest.mark.parametrize(
        ("currency", "amount", "ok"),
        [
            ("CNY", "0.001", False),
            ("EUR", "10.005", False),
            ("EUR", "10.50", True),
            ("EUR", "10.5000", True),
            ("JPY", "1000.5", False),
            ("JPY", "1000", True),
            ("KWD", "1.234", True),
            ("KWD", "1.2345", False),
        ],
    )
    async def test_an_amount_has_its_currencys_decimals(
        self, api: Api, db: asyncpg.Connection, currency: str, amount: str, ok: bool
    ) -> None:
        await api.use_rules(EARN)
        member = await api.enrol()
        key = f"money-{currency}-{amount}"
        response = await api.post(
            "/v1/orders",
            {
                "order_id": key,
                "member": member,
                "total": {"amount": amount, "currency": currency},
                "paid_at": datetime.now(UTC).isoformat(),
            },
            idempotency_key=key,
        )
        if ok:
            assert response.status_code == 201, response.text
        else:
            invalid(response, "total")
            assert await entries_with_key(db, api.program, key) == 0


class TestIds:
    async def test_an_order_id_not_in_nfc_is_refused_so_one_order_never_earns_twice(
        self, api: Api, db: asyncpg.Connection
    ) -> None:
        await api.use_rules({**EARN, "currency": "EUR"})
        member = await api.enrol()
        composed = unicodedata.normalize("NFC", "caf\u00e9-1")
        decomposed = unicodedata.normalize("NFD", composed)
        assert composed != decomposed
        first = await api.order(member, "10.00", order_id=composed)
        assert first.status_code == 201, first.text
        second = await api.order(member, "10.00", order_id=decomposed)
        invalid(second, "order_id")
        assert await api.available(member) == 10

    async def test_a_refund_id_not_in_nfc_is_refused(self, api: Api) -> None:
        await api.use_rules({**EARN, "currency": "EUR"})
        member = await api.enrol()
        await api.order(member, "10.00", order_id="o-nfc")
        refund = await api.refund(
            "o-nfc",
            refund_id=unicodedata.normalize("NFD", "r\u00e9"),
            amount={"amount": "1.00", "currency": "EUR"},
        )
        invalid(refund, "refund_id")


class TestOrderLines:
    async def test_two_lines_of_one_sku_are_refused(self, api: Api) -> None:
        await api.use_rules({**EARN, "currency": "EUR"})
        member = await api.enrol()
        sock = line("SOCK-1", "socks", "5.00")
        response = await api.order(member, "10.00", lines=[sock, sock])
        invalid(response, "body")
        assert "one line per SKU" in response.json()["detail"]

    async def test_a_total_above_the_lines_earns_the_rest_at_the_base_rate(self, api: Api) -> None:
        # The lines are what was bought; the rest of the total (shipping, fees) earns
        # like any money, but no line's multiplier reaches it.
        document = {
            **EARN,
            "currency": "EUR",
            "earn": {
                **EARN["earn"],
                "multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}],
            },
        }
        await api.use_rules(document)
        member = await api.enrol()
        line = {
            "sku": "SHOE-1",
            "category": "shoes",
            "quantity": 1,
            "unit_price": {"amount": "100.00", "currency": "EUR"},
        }
        response = await api.order(member, "120.00", lines=[line])
        assert response.status_code == 201, response.text
        assert response.json()["points"] == 300 + 20

    async def test_a_total_below_the_lines_is_shared_among_them(self, api: Api) -> None:
        # An order-level discount: the total is what was paid, shared among the lines
        # in proportion, so a line's multiplier applies to its share of what was paid.
        document = {
            **EARN,
            "currency": "EUR",
            "earn": {
                **EARN["earn"],
                "multipliers": [{"id": "shoes", "factor": "3", "when": {"category": ["shoes"]}}],
            },
        }
        await api.use_rules(document)
        member = await api.enrol()
        lines = [
            {
                "sku": "SHOE-1",
                "category": "shoes",
                "quantity": 1,
                "unit_price": {"amount": "60.00", "currency": "EUR"},
            },
            {
                "sku": "SOCK-1",
                "category": "socks",
                "quantity": 1,
                "unit_price": {"amount": "40.00", "currency": "EUR"},
            },
        ]
        response = await api.order(member, "80.00", lines=lines)
        assert response.status_code == 201, response.text
        # shoes' share 48.00 at x3 = 144, socks' share 32.00 at x1 = 32
        assert response.json()["points"] == 144 + 32


class TestMoneyOut:
    async def test_a_refund_of_a_yen_order_answers_in_whole_yen(self, api: Api) -> None:
        await api.use_rules({"currency": "JPY", "earn": {"base": {"points": 1, "per": "100"}}})
        member = await api.enrol()
        await api.order(member, "1000", order_id="yen-1", currency="JPY")
        refund = await api.refund("yen-1", amount={"amount": "333", "currency": "JPY"})
        assert refund.status_code == 201, refund.text
        assert refund.json()["amount"] == {"amount": "333", "currency": "JPY"}
