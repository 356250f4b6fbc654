"""What each entry kind means to the reports: where issued points came from, and
what took points from members. Kinds are strings here so that a kind the ledger
adds later (`forfeit`, issue 16) is counted as soon as it exists."""

from __future__ import annotations

from typing import Literal

Source = Literal["orders", "partner_orders", "conversions", "events", "awards", "imports"]
Use = Literal["redeemed", "expired", "forfeited", "refunded"]
SOURCES: tuple[Source, ...] = ("orders", "partner_orders", "conversions", "events", "awards", "imports")

FORFEIT = "forfeit"

# Entries that give members points, by where they come from (an earn a partner
# funded is a partner order's; a `conversion` entry is a partner's points converted
# in: a conversion out is a hold its capture spends).
ISSUING: dict[str, Source] = {
    "earn": "orders",
    "conversion": "conversions",
    "event": "events",
    "award": "awards",
    "import": "imports",
}

# Entries that take points from members for good (net of what their reversals give back).
# A hold takes points from the available ones and a capture spends them: the two
# together, less releases, are what was redeemed (partner redemptions and
# conversions out among them); `tier_keep` buys a tier term,
# `donation` gives points to a cause: both spend points like a redemption.
USES: dict[str, Use] = {
    "redemption": "redeemed",
    "hold": "redeemed",
    "capture": "redeemed",
    "release": "redeemed",
    "donation": "redeemed",
    "tier_keep": "redeemed",
    "expire": "expired",
    FORFEIT: "forfeited",
    "refund": "refunded",
}

# Kinds that count a member as active (with their orders).
ACTIVE_KINDS: tuple[str, ...] = ("event", "redemption", "hold", "conversion", "donation", "transfer")
# Kinds that count a member as participating in the overview (with their orders).
PARTICIPATING_KINDS: tuple[str, ...] = ("event", "redemption", "hold", "conversion", "transfer")


def source(kind: str, partner: bool) -> Source | None:
    found = ISSUING.get(kind)
    if found == "orders" and partner:
        return "partner_orders"
    return found
