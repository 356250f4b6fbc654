"""The reports' pure parts: the cohort replay and the categories, with kinds the
HTTP tests cannot write yet (`forfeit`, issue 16)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from app.reports.categories import FORFEIT
from app.reports.lots import Changed, CohortBook, taking
from app.reports.service import _Flows

SOON = datetime(2027, 1, 1, tzinfo=UTC)


def entry() -> uuid.UUID:
    return uuid.uuid4()


class TestCohortBook:
    def test_a_transfer_keeps_the_cohort_and_a_forfeit_counts_apart(self) -> None:
        book = CohortBook()
        earn, award = entry(), entry()
        book.apply(earn, "2026-01", taking("earn", None), None, None, [(1, 100)])
        book.apply(award, "2026-02", taking("award", None), None, SOON, [(1, 50)])
        # the transfer takes the soonest-expiring lot first: February's
        book.apply(entry(), "2026-03", taking("transfer", None), None, None, [(1, -60), (2, 60)])
        book.apply(entry(), "2026-03", taking(FORFEIT, None), None, None, [(2, -60)])
        january, february = book.cohorts["2026-01"], book.cohorts["2026-02"]
        assert (january.issued, january.forfeited) == (100, 10)
        assert (february.issued, february.forfeited) == (50, 50)
        assert "2026-03" not in book.cohorts or book.cohorts["2026-03"].issued == 0
        assert sum(lot.remaining for lot in book.remaining()) == 90

    def test_a_release_gives_back_what_its_hold_took(self) -> None:
        book = CohortBook()
        hold = entry()
        book.apply(entry(), "2026-01", "taken_back", None, None, [(1, 100)])
        book.apply(hold, "2026-02", taking("hold", None), None, None, [(1, -40)])
        assert book.cohorts["2026-01"].redeemed == 40
        book.apply(entry(), "2026-02", taking("release", None), hold, None, [(1, 40)])
        assert book.cohorts["2026-01"].redeemed == 0
        assert book.cohorts["2026-01"].issued == 100
        assert sum(lot.remaining for lot in book.remaining()) == 100

    def test_a_refund_takes_its_orders_points_first(self) -> None:
        book = CohortBook()
        order = entry()
        book.apply(entry(), "2026-01", "taken_back", None, SOON, [(1, 10)])
        book.apply(order, "2026-02", "taken_back", None, None, [(1, 30)])
        book.apply(entry(), "2026-03", taking("refund", None), order, None, [(1, -20)])
        assert (book.cohorts["2026-01"].taken_back, book.cohorts["2026-02"].taken_back) == (0, 20)

    def test_versions_hold_what_each_day_changed_and_carry_on(self) -> None:
        """A day's versions are the lots and uses it changed; a book restored from
        the first day's versions replays the second day as the whole book does."""
        book = CohortBook(changed=Changed())
        award, hold, release = entry(), entry(), entry()
        first, second = date(2026, 1, 5), date(2026, 1, 6)
        book.apply(award, "2026-01", "taken_back", None, SOON, [(1, 100)])
        book.apply(hold, "2026-01", taking("hold", None), None, None, [(1, -40)])
        lots, uses = book.versions(first)
        seq = lots[0][1]
        assert lots == [(1, seq, first, award, "2026-01", SOON, 60)]
        assert uses == [(1, hold, seq, first, "redeemed", 40)]
        restored = CohortBook(changed=Changed())
        restored.restore([(1, *lot[1:2], *lot[3:]) for lot in lots], [(*use[:3], *use[4:]) for use in uses])
        for replaying in (book, restored):
            replaying.apply(release, "2026-01", taking("release", None), hold, None, [(1, 40)])
        lots, uses = book.versions(second)
        assert lots == [(1, seq, second, award, "2026-01", SOON, 100)]
        assert uses == [(1, hold, seq, second, "redeemed", 0)]
        assert restored.versions(second) == (lots, uses)
        # nothing changed since: no versions
        assert book.versions(date(2026, 1, 7)) == ([], [])


class TestFlows:
    def test_kinds_fall_into_their_categories(self) -> None:
        flows = _Flows.empty()
        for kind, partner, points in [
            ("earn", False, 100),
            ("earn", True, 20),
            ("conversion", True, 5),
            ("award", False, 50),
            ("redemption", False, -40),
            ("capture", False, -10),
            ("expire", False, -7),
            (FORFEIT, False, -3),
            ("refund", False, -20),
            ("transfer", False, 0),
        ]:
            flows.add(kind, partner, points)
        assert flows.issued == {
            "orders": 100,
            "partner_orders": 20,
            "conversions": 5,
            "events": 0,
            "awards": 50,
            "imports": 0,
        }
        assert (flows.redeemed, flows.expired, flows.forfeited, flows.refunded) == (50, 7, 3, 20)
        assert flows.net_change == 175 - 80
