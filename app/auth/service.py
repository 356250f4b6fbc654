"""API keys: minting, hashing, resolving a bearer token to a principal, scopes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from datetime import datetime

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.models import ApiKey
from app.db import listen
from app.errors import AppError, NotFound, Unauthorized, ValidationFailed
from app.principal import PARTNER_SCOPE_PREFIX, Principal

logger = logging.getLogger(__name__)

KEY_PREFIX = "plk_"
DEFAULT_PROGRAM = "default"


class ApiKeyNotFound(NotFound):
    code, title = "api_key_not_found", "API key not found"


class PartnerNotFound(NotFound):
    code, title = "partner_not_found", "Partner not found"


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast digest is enough: there is nothing to
    # brute-force, and a slow hash would cost every request.
    return hashlib.sha256(key.encode()).hexdigest()


def mint_key() -> tuple[str, str, str]:
    """A new key: (key shown once, its display prefix, its stored digest)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:12], hash_key(key)


REVOKED_CHANNEL = "api_key_revoked"


class Authenticator:
    """Resolves bearer tokens to principals.

    Verified keys are cached for `cache_seconds`. A revocation must still stop a
    key at once, in every process: a trigger on api_key NOTIFYs the
    `api_key_revoked` channel, and `watch_revocations` keeps a LISTEN connection
    that drops the cache on each one. While that connection is down (or before it
    is up) nothing is cached. Unknown keys are never cached.
    """

    def __init__(self, pool: asyncpg.Pool, *, admin_key: str | None, cache_seconds: float) -> None:
        self._pool = pool
        self._admin_key = admin_key
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._listening = False
        self._default_program_id: int | None = None
        # bumped by every forget(): a lookup that began before a revocation or a
        # partner's suspension committed must not put what it read in the cache
        self._generation = 0

    def forget(self) -> None:
        self._generation += 1
        self._cache.clear()

    @property
    def caching(self) -> bool:
        return self._listening and self._cache_seconds > 0

    def _listening_changed(self, listening: bool) -> None:
        self.forget()
        self._listening = listening

    async def watch_revocations(self, dsn: str, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection until `stop`, reconnecting when it drops."""
        await listen(dsn, REVOKED_CHANNEL, on_notify=self.forget, on_state=self._listening_changed, stop=stop)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("send the API key as `Authorization: Bearer <key>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send the API key as `Authorization: Bearer <key>`")
        if self._admin_key is not None and hmac.compare_digest(token.encode(), self._admin_key.encode()):
            return Principal(
                program_id=await self._default_program(),
                program_code=DEFAULT_PROGRAM,
                key_id=None,
                scopes=frozenset({"admin"}),
            )
        digest = hash_key(token)
        if self.caching:
            hit = self._cache.get(digest)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        generation = self._generation
        principal = await self._lookup(digest)
        if principal is None:
            raise Unauthorized("the API key is not valid or has been revoked")
        if self.caching and generation == self._generation:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + self._cache_seconds, principal)
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        row = await self._pool.fetchrow(repository.PRINCIPAL_BY_HASH, digest)
        if row is None:
            return None
        return Principal(
            program_id=row["program_id"],
            program_code=row["program_code"],
            key_id=row["id"],
            scopes=frozenset(row["scopes"]),
            partner_code=row["partner_code"],
            partner_id=row["partner_id"],
            partner_active=row["partner_status"] in (None, "active"),
            partner_roles=frozenset(row["partner_roles"] or ()),
            partner_billing=row["partner_billing"],
        )

    async def _default_program(self) -> int:
        if self._default_program_id is None:
            program_id = await self._pool.fetchval(repository.PROGRAM_ID_BY_CODE, DEFAULT_PROGRAM)
            if program_id is None:
                raise AppError("the default program is missing: run `points-ledger migrate`")
            self._default_program_id = int(program_id)
        return self._default_program_id


async def create_key(
    session: AsyncSession,
    *,
    program_id: int,
    name: str,
    scopes: list[str],
    partner_code: str | None,
    now: datetime,
) -> tuple[ApiKey, str]:
    partner_scopes = sorted(scope for scope in scopes if scope.startswith(PARTNER_SCOPE_PREFIX))
    if partner_code is None and partner_scopes:
        raise ValidationFailed.on(
            "body.scopes", f"{', '.join(partner_scopes)} are for a partner's key: name the partner"
        )
    if partner_code is not None and len(partner_scopes) != len(set(scopes)):
        raise ValidationFailed.on("body.scopes", "a partner's key holds only partner:* scopes")
    key, prefix, digest = mint_key()
    try:
        async with session.begin_nested():
            row = await _insert_key(session, program_id, name, prefix, digest, scopes, partner_code, now)
    except IntegrityError as exc:
        if "fk_api_key_partner_code_partner" not in str(exc.orig):
            raise
        raise PartnerNotFound(f"no partner {partner_code} in this program") from exc
    return row, key


async def _insert_key(
    session: AsyncSession,
    program_id: int,
    name: str,
    prefix: str,
    digest: str,
    scopes: list[str],
    partner_code: str | None,
    now: datetime,
) -> ApiKey:
    return await repository.insert_key(
        session,
        program_id=program_id,
        name=name,
        key_prefix=prefix,
        key_hash=digest,
        scopes=sorted(set(scopes)),
        partner_code=partner_code,
        created_at=now,
    )


async def list_keys(
    session: AsyncSession, program_id: int, *, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[ApiKey]:
    return await repository.list_keys(session, program_id, limit=limit, before=before)


async def revoke_key(session: AsyncSession, program_id: int, key_id: uuid.UUID, now: datetime) -> None:
    if not await repository.revoke_key(session, program_id, key_id, now):
        raise ApiKeyNotFound(f"no API key {key_id} in this program")


async def program_of_key(session: AsyncSession, key_id: uuid.UUID) -> int | None:
    """The program a key belongs to (operators revoke by id alone, from the CLI)."""
    return await repository.program_of_key(session, key_id)
