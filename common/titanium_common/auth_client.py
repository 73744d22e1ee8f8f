"""Bearer-token checks for services whose writes need a logged-in user: ask auth-service's `/api/auth/verify`.

A positive answer is cached for at most `cache_ttl_s` (30 s by default) and never past the token's own expiry,
so a revoked or expired token stops working soon; auth-service down gives 503 naming it, never a 500 or a hang.
"""

import collections
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .http_client import create_client_session

AUTH_SERVICE = "auth-service"
MAX_CACHE_TTL_S = 30.0


@dataclass(frozen=True)
class Identity:
    sub: str
    username: str
    role: str
    exp: int

    @property
    def user_id(self) -> int | None:
        return int(self.sub) if self.sub.isdigit() else None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header; None when there is no such header."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected 'Authorization: Bearer <token>'")
    return token.strip()


class TokenVerifier:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth_service_url: str,
        *,
        cache_ttl_s: float = MAX_CACHE_TTL_S,
        max_entries: int = 10_000,
    ) -> None:
        self.session = session
        self.verify_url = auth_service_url.rstrip("/") + "/api/auth/verify"
        self.cache_ttl_s = min(cache_ttl_s, MAX_CACHE_TTL_S)
        self.max_entries = max_entries
        self._cache: collections.OrderedDict[str, tuple[float, Identity]] = collections.OrderedDict()

    def _cached(self, key: str) -> Identity | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        valid_until, identity = entry
        if time.time() >= valid_until:
            del self._cache[key]
            return None
        return identity

    def _remember(self, key: str, identity: Identity) -> None:
        valid_until = min(time.time() + self.cache_ttl_s, identity.exp)
        self._cache[key] = (valid_until, identity)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def verify(self, token: str) -> Identity:
        """The token's identity; 401 if auth-service rejects it, 503 if auth-service does not answer."""
        key = hashlib.sha256(token.encode()).hexdigest()
        identity = self._cached(key)
        if identity is not None:
            return identity
        try:
            async with self.session.get(self.verify_url, headers={"Authorization": f"Bearer {token}"}) as answer:
                body = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HTTPException(503, f"{AUTH_SERVICE} unavailable: {type(exc).__name__}") from exc
        if status == 401:
            raise unauthorized(body.get("detail", "invalid token") if isinstance(body, dict) else "invalid token")
        if status != 200 or not isinstance(body, dict) or body.get("valid") is not True:
            raise HTTPException(503, f"{AUTH_SERVICE} answered {status}")
        identity = Identity(sub=str(body["sub"]), username=body["username"], role=body["role"], exp=int(body["exp"]))
        self._remember(key, identity)
        return identity

    async def identity_of(self, request: Request, *, required: bool) -> Identity | None:
        token = bearer_token(request)
        if token is None:
            if required:
                raise unauthorized("missing bearer token")
            return None
        return await self.verify(token)

    async def admin_of(self, request: Request) -> Identity:
        """The caller's identity if it is an admin: 401 without a valid token, 403 with another role's."""
        identity = await self.identity_of(request, required=True)
        if not identity.is_admin:
            raise HTTPException(403, f"an admin token is required (this token's role is {identity.role!r})")
        return identity


@contextlib.asynccontextmanager
async def token_verifier(auth_service_url: str) -> AsyncIterator[TokenVerifier]:
    """A verifier on a client session of its own, for a service's lifespan."""
    session = create_client_session()
    try:
        yield TokenVerifier(session, auth_service_url)
    finally:
        await session.close()
