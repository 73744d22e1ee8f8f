"""Bearer-token checks for services whose writes need a logged-in user: ask auth-service's `/api/auth/verify`.

A positive answer is cached for at most `cache_ttl_s` (30 s by default) and never past the token's own expiry.
The cache keeps an entry that long only while a `RevocationFeed` is listening (it drops a user's entries as soon as
their tokens are revoked); without one, an entry lives at most a second. So a revoked token stops working within
a second. auth-service down gives 503 naming it, never a 500 or a hang.
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

from .http_client import create_client_session, standard_timeout
from .revocations import DEFAULT_CHANNEL, RevocationFeed
from .settings import split_list

AUTH_SERVICE = "auth-service"
MAX_CACHE_TTL_S = 30.0
# Below the gateway's 2 s for the request that needs the check, so that a slow auth-service is this service's 503
# naming it, not the gateway's 504 naming this service.
VERIFY_TIMEOUT_S = 1.5


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
        feed: RevocationFeed | None = None,
        timeout_s: float = VERIFY_TIMEOUT_S,
    ) -> None:
        self.session = session
        self.verify_url = auth_service_url.rstrip("/") + "/api/auth/verify"
        self.cache_ttl_s = min(cache_ttl_s, MAX_CACHE_TTL_S)
        self.max_entries = max_entries
        self.feed = feed or RevocationFeed()
        self.feed.add_listener(self.forget)
        self.timeout = standard_timeout(response_s=timeout_s)
        # token digest -> (cached at, valid until, identity)
        self._cache: collections.OrderedDict[str, tuple[float, float, Identity]] = collections.OrderedDict()
        # Raised by every revocation: an answer that a revocation overtook is not cached.
        self._generation = 0

    def forget(self, sub: str | None) -> None:
        """Drop what is cached for the user `sub` (a revocation), or everything for None."""
        self._generation += 1
        if sub is None:
            self._cache.clear()
            return
        for key in [k for k, (_, _, identity) in self._cache.items() if identity.sub == sub]:
            del self._cache[key]

    def _cached(self, key: str) -> Identity | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        cached_at, valid_until, identity = entry
        now = time.time()
        if now >= valid_until or now - cached_at >= self.feed.max_age_s(self.cache_ttl_s):
            del self._cache[key]
            return None
        return identity

    def _remember(self, key: str, identity: Identity) -> None:
        now = time.time()
        self._cache[key] = (now, min(now + self.cache_ttl_s, identity.exp), identity)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def verify(self, token: str) -> Identity:
        """The token's identity; 401 if auth-service rejects it, 503 if auth-service does not answer."""
        key = hashlib.sha256(token.encode()).hexdigest()
        identity = self._cached(key)
        if identity is not None:
            return identity
        generation = self._generation
        try:
            async with self.session.get(
                self.verify_url, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout
            ) as answer:
                body = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HTTPException(503, f"{AUTH_SERVICE} unavailable: {type(exc).__name__}") from exc
        if status == 401:
            raise unauthorized(body.get("detail", "invalid token") if isinstance(body, dict) else "invalid token")
        if status != 200 or not isinstance(body, dict) or body.get("valid") is not True:
            raise HTTPException(503, f"{AUTH_SERVICE} answered {status}")
        identity = Identity(sub=str(body["sub"]), username=body["username"], role=body["role"], exp=int(body["exp"]))
        if generation == self._generation:
            self._remember(key, identity)
        return identity

    async def identity_of(self, request: Request, *, required: bool) -> Identity | None:
        token = bearer_token(request)
        if token is None:
            if required:
                raise unauthorized("missing bearer token")
            return None
        return await self.verify(token)

    async def require_role(self, request: Request, *roles: str) -> Identity:
        """The request's identity if its role is one of `roles`: 401 without a valid token, 403 with another role."""
        identity = await self.identity_of(request, required=True)
        if identity.role not in roles:
            raise HTTPException(
                403, f"an {' or '.join(roles)} token is required (this token's role is {identity.role!r})"
            )
        return identity


@contextlib.asynccontextmanager
async def token_verifier(
    auth_service_url: str, *, redis_url: str = "", revocation_channel: str = DEFAULT_CHANNEL
) -> AsyncIterator[TokenVerifier]:
    """A verifier on a client session of its own, for a service's lifespan; with `redis_url` it hears revocations
    and may cache answers longer than a second."""
    session = create_client_session()
    feed = RevocationFeed(redis_url, revocation_channel)
    await feed.start()
    try:
        yield TokenVerifier(session, auth_service_url, feed=feed)
    finally:
        await feed.close()
        await session.close()


def settings_token_verifier(settings) -> contextlib.AbstractAsyncContextManager[TokenVerifier]:
    """`token_verifier` from a service's settings: `auth_service_url`, and `redis_url` and `revocation_channel`
    (`titanium_common.revocations.RevocationSettings`), so that every service hears revocations the same way."""
    # The first address if the setting lists every replica (ops-mcp's does, to read each one's traces).
    auth_service_url = split_list(settings.auth_service_url)[0]
    return token_verifier(
        auth_service_url, redis_url=settings.redis_url, revocation_channel=settings.revocation_channel
    )
