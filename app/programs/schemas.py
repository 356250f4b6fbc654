from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import Name


class ProgramCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"code": "acme-coffee", "name": "ACME Coffee Club", "point_name": "beans"}]
        },
    )

    code: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="stable program code (lower case letters, digits, _ and -)",
        examples=["acme-rewards"],
    )
    name: Name = Field(examples=["ACME Rewards"])
    point_name: Name | None = Field(
        default=None, description="what the program calls its points", examples=["stars"]
    )


class ProgramCreated(BaseModel):
    code: str = Field(description="program code", examples=["acme-rewards"])
    name: str = Field(description="program name", examples=["ACME Rewards"])
    point_name: str = Field(description="what the program calls its points", examples=["stars"])
    created_at: datetime = Field(description="when it was created", examples=["2026-11-24T10:00:00Z"])
    admin_key: str = Field(
        description="an admin API key of the new program; shown once", examples=["plk_..."]
    )
