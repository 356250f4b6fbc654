from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal[
    "members:read",
    "members:write",
    "points:earn",
    "points:burn",
    "points:transfer",
    "points:adjust",
    "rules:read",
    "rules:write",
    "reports:read",
    "events:read",
    "webhooks:write",
    "admin",
    "partner:earn",
    "partner:redeem",
    "partner:convert",
]
ALL_SCOPES: tuple[str, ...] = get_args(Scope)
PARTNER_SCOPES: frozenset[str] = frozenset(scope for scope in ALL_SCOPES if scope.startswith("partner:"))

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a label for people",
    ),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "checkout", "scopes": ["points:earn", "members:read"]}]},
    )

    name: Name = Field(examples=["checkout-eu"])
    scopes: list[Scope] = Field(
        min_length=1, description="what the key may do", examples=[["points:earn", "members:read"]]
    )
    partner: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="binds the key to one partner of the program: it may then hold only partner:* "
        "scopes and call only the /v1/partner/ endpoints, for that partner",
        examples=[None],
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID = Field(
        description="key id, used to revoke it", examples=["0193b1a2-7c1e-7d2a-9a4f-5a1e2f3b4c5d"]
    )
    name: str = Field(description="the key's label", examples=["checkout-eu"])
    prefix: str = Field(
        description="the first characters of the key, to recognise it", examples=["plk_3Jx9QmT"]
    )
    scopes: list[str] = Field(description="granted scopes", examples=[["points:earn"]])
    partner: str | None = Field(description="partner the key is bound to", examples=[None])
    created_at: datetime = Field(description="when the key was created", examples=["2026-11-24T10:00:00Z"])
    revoked_at: datetime | None = Field(description="when the key was revoked", examples=[None])


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret key; shown once, store it now", examples=["plk_3Jx9QmT..."])


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut] = Field(description="keys, newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page", examples=[None])
