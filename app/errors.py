"""One error type, one renderer: every failure leaves as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app import requestid
from app.db import database_unavailable

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:points-ledger:problem:"


class FieldError(BaseModel):
    field: str = Field(
        description="where the problem is: body.points, query.limit, header.x",
        examples=["body.points"],
    )
    message: str = Field(description="what is wrong with it", examples=["Input should be greater than 0"])
    type: str = Field(description="machine-readable kind of the problem", examples=["greater_than"])


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(json_schema_extra={"description": "RFC 9457 problem details"})

    type: str = Field(
        description="URI naming the problem type",
        examples=["urn:points-ledger:problem:insufficient_points"],
    )
    title: str = Field(description="short summary of the problem type", examples=["Not enough points"])
    status: int = Field(description="HTTP status code", examples=[422])
    detail: str = Field(
        description="what happened in this request",
        examples=["member m-1 has 40 available points, 100 requested"],
    )
    code: str = Field(description="stable machine-readable error code", examples=["insufficient_points"])
    errors: list[FieldError] | None = Field(default=None, description="field errors, for validation problems")
    request_id: str | None = Field(
        default=None,
        description="the request's id (its X-Request-ID), to find it in the service's logs",
        examples=["4bf92f3577b34da6a3ce929d0e0e4736"],
    )
    # Extension members of `limit_exceeded` (the rules' `limits`).
    limit: str | None = Field(
        default=None,
        description="limit_exceeded: the rules' limit the request would pass",
        examples=["redeem_points_per_member_per_day"],
    )
    allowed: int | None = Field(
        default=None, description="limit_exceeded: the limit's value in the active rules", examples=[1000]
    )
    remaining: int | None = Field(
        default=None,
        description="limit_exceeded: what the limit still lets through (today, for a daily limit)",
        examples=[250],
    )
    day: str | None = Field(
        default=None,
        description="limit_exceeded: the local day (program timezone) a daily limit counts; "
        "absent for a per-request limit",
        examples=["2026-11-29"],
    )


class AppError(Exception):
    """Base of every expected failure. Subclasses fix status, code and title."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[FieldError] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        # RFC 9457 extension members: fields of Problem beyond the standard ones
        self.extensions = extensions or {}


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "The API key lacks a required scope"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "The request is not valid"

    @classmethod
    def on(cls, field: str, message: str, kind: str = "value_error") -> ValidationFailed:
        return cls(f"{field}: {message}", errors=[FieldError(field=field, message=message, type=kind)])


class MalformedJson(AppError):
    status, code, title = 400, "malformed_json", "The request body is not valid JSON"


class ServiceUnavailable(AppError):
    status, code, title = 503, "unavailable", "A dependency is not reachable"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body = Problem(
        type=PROBLEM_TYPE_PREFIX + code,
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=errors,
        request_id=requestid.current.get(),
        **(extensions or {}),
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def internal_error(method: str, path: str, exc: BaseException) -> Response:
    """A 500 `internal_error`, the error logged with its traceback (and, while the
    request's id is current, with the id: MetricsMiddleware answers with this)."""
    logger.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal error",
        detail="an unexpected error occurred; it has been logged",
    )


def render(error: AppError) -> Response:
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        errors=error.errors,
        extensions=error.extensions,
    )


def _field_path(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_problem(exc: RequestValidationError) -> Response:
    raw = exc.errors()
    if any(err.get("type") == "json_invalid" for err in raw):
        return render(MalformedJson("the body could not be parsed as JSON"))
    errors = [
        FieldError(
            field=_field_path(err.get("loc", ())),
            message=str(err.get("msg", "")),
            type=str(err.get("type", "")),
        )
        for err in raw
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "the request is not valid"
    return render(ValidationFailed(detail, errors=errors))


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this request's path."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return render(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        response = problem_response(status=exc.status_code, code=code, title=title, detail=detail)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:  # the router names one route's methods; a path may have several
            response.headers["Allow"] = _allowed_methods(request)
        return response

    async def on_database_unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        response = render(
            ServiceUnavailable(
                "the ledger could not complete the request in time; retry it with the same "
                "Idempotency-Key (a retry replays it if it did complete)"
            )
        )
        response.headers["Retry-After"] = "1"
        return response

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if database_unavailable(exc):  # however SQLAlchemy wrapped it on the way up
            return await on_database_unavailable(request, exc)
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return internal_error(request.method, request.url.path, exc)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # A database that is down, restarting, out of connections or too slow (a lock
    # held past statement_timeout) is the service's trouble, not the caller's
    # input: 503 with Retry-After, and the retry with the same key is safe.
    # database_unavailable() decides, looking through SQLAlchemy's wrapping.
    for database_error in (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        SQLAlchemyError,
        OSError,  # ConnectionError, TimeoutError and the sockets that could not connect
    ):
        app.add_exception_handler(database_error, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for an endpoint: each status with the codes it may carry."""
    by_status: dict[int, list[str]] = {}
    everywhere: tuple[type[AppError], ...] = (Unauthorized, ValidationFailed)
    for err in (*everywhere, *errors):
        by_status.setdefault(err.status, []).append(err.code)
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": "Problem codes: " + ", ".join(f"`{c}`" for c in sorted(set(codes))),
        }
        for status, codes in sorted(by_status.items())
    }
