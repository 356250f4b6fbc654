from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.fields import Instant
from app.rules import RulesDocument


class RulesVersionOut(BaseModel):
    version: int = Field(description="version number, from 1 up, per program", examples=[3])
    active: bool = Field(description="whether orders and events earn under this version now", examples=[True])
    created_at: datetime = Field(description="when it was stored (UTC)", examples=["2026-11-25T10:00:00Z"])
    activated_at: datetime | None = Field(
        description="when it was last switched on (UTC)", examples=["2026-11-25T10:05:00Z"]
    )
    document: RulesDocument = Field(description="the rules, with every default filled in")


class SimulationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Instant = Field(
        alias="from",
        description="first instant of `paid_at` to replay (included)",
        examples=["2026-10-01T00:00:00Z"],
    )
    to: Instant = Field(description="end of the period (excluded)", examples=["2026-11-01T00:00:00Z"])


class RuleSplit(BaseModel):
    rule: str = Field(description="rule id (base, a multiplier, a bonus, cap:...)", examples=["member-day"])
    actual_points: int = Field(
        description="points this rule gave under the versions that ran", examples=[1200]
    )
    simulated_points: int = Field(description="points it gives under the simulated version", examples=[2400])
    delta_points: int = Field(description="simulated minus actual", examples=[1200])


class SimulationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: int = Field(description="the simulated rules version", examples=[4])
    from_: datetime = Field(
        alias="from", description="start of the period (UTC)", examples=["2026-10-01T00:00:00Z"]
    )
    to: datetime = Field(description="end of the period (UTC)", examples=["2026-11-01T00:00:00Z"])
    orders: int = Field(description="orders paid in the period", examples=[100000])
    orders_not_earning: int = Field(
        description="of those, orders in a currency the simulated version does not take", examples=[0]
    )
    actual_points: int = Field(description="what they earned", examples=[2400000])
    simulated_points: int = Field(
        description="what they would have earned under `version`", examples=[2650000]
    )
    delta_points: int = Field(description="simulated minus actual", examples=[250000])
    rules: list[RuleSplit] = Field(description="the split by rule, largest change first")
