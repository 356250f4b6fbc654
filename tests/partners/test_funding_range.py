"""A partner's funding is spread over slots, each a bigint: their total must stay
within 2^63-1 too, or reading the partner (and /metrics) would overflow."""

from __future__ import annotations

from tests.partners.helpers import fund, onboard
from tests.support import Api

MAX = 2**63 - 1


class TestFundingStaysInRange:
    async def test_a_funding_past_the_largest_total_is_refused_and_reads_keep_working(self, api: Api) -> None:
        code = await onboard(api, billing="prepaid")
        assert (await fund(api, code, MAX - 10)).status_code == 201
        refused = await fund(api, code, 100)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "points_out_of_range"
        assert (await fund(api, code, 10)).status_code == 201
        partner = await api.get(f"/v1/partners/{code}")
        assert partner.status_code == 200, partner.text
        assert partner.json()["funding_points"] == MAX
        assert (await api.get("/v1/partners")).status_code == 200
        metrics = await api.client.get("/metrics")
        assert metrics.status_code == 200
