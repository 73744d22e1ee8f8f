"""user-service, as auth-service needs it: the password check, a user's token state, and revoking a user's
tokens, over the kit's aiohttp session."""

import time
from typing import Any

import aiohttp
from fastapi import HTTPException

from titanium_common.http_client import standard_timeout
from titanium_common.revocations import RevocationFeed

USER_SERVICE = "user-service"
# A user's token state is trusted this long while revocations are heard (else a second: see RevocationFeed).
STATE_CACHE_S = 30.0
STATE_CACHE_ENTRIES = 50_000


class UserDirectory:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        user_service_url: str,
        feed: RevocationFeed,
        *,
        check_timeout_s: float,
        state_timeout_s: float,
    ) -> None:
        self.session = session
        self.base = user_service_url.rstrip("/")
        self.feed = feed
        self.check_timeout = standard_timeout(response_s=check_timeout_s)
        self.state_timeout = standard_timeout(response_s=state_timeout_s)
        # user id -> (cached at, state or None for "no such user")
        self._states: dict[str, tuple[float, dict[str, Any] | None]] = {}
        # Raised by every revocation: a lookup that a revocation overtook does not cache what it read.
        self._generation = 0
        feed.add_listener(self.forget)

    def forget(self, user_id: str | None) -> None:
        self._generation += 1
        if user_id is None:
            self._states.clear()
        else:
            self._states.pop(user_id, None)

    async def _call(self, method: str, path: str, budget: aiohttp.ClientTimeout, **kwargs) -> tuple[int, Any, str]:
        try:
            async with self.session.request(method, self.base + path, timeout=budget, **kwargs) as answer:
                body = await answer.json(content_type=None) if answer.status in (200, 404) else None
                return answer.status, body, answer.headers.get("Retry-After", "")
        except TimeoutError as exc:  # slow, not gone: most often a busy machine, so the caller may come back
            raise HTTPException(
                503, f"{USER_SERVICE} did not answer in time; retry shortly", headers={"Retry-After": "1"}
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise HTTPException(503, f"{USER_SERVICE} unavailable: {type(exc).__name__}") from exc

    @staticmethod
    def _failed(status: int, retry_after: str) -> HTTPException:
        if status == 503 and retry_after.isdigit():
            return HTTPException(503, f"{USER_SERVICE} is busy; retry shortly", headers={"Retry-After": retry_after})
        return HTTPException(503, f"{USER_SERVICE} answered {status}")

    async def check(self, username: str, password: str) -> dict[str, Any] | None:
        """The user (`id`, `username`, `role`, `token_version`) if the password matches, None if not; 503 (with
        user-service's Retry-After when it is busy) if it cannot say."""
        status, body, retry_after = await self._call(
            "POST",
            "/internal/credentials/verify",
            self.check_timeout,
            json={"username": username, "password": password},
        )
        if status in (401, 422):
            return None
        if status != 200 or not isinstance(body, dict) or body.get("valid") is not True:
            raise self._failed(status, retry_after)
        return body

    async def token_state(self, user_id: str) -> dict[str, Any] | None:
        """`{id, username, role, token_version}` of the user now, or None if there is no such user."""
        entry = self._states.get(user_id)
        if entry is not None and time.monotonic() - entry[0] < self.feed.max_age_s(STATE_CACHE_S):
            return entry[1]
        generation = self._generation
        status, body, retry_after = await self._call(
            "GET", f"/internal/users/{user_id}/token-state", self.state_timeout
        )
        if status in (404, 422):  # 422: an id no user can have
            state = None
        elif status == 200 and isinstance(body, dict) and isinstance(body.get("token_version"), int):
            state = body
        else:
            raise self._failed(status, retry_after)
        if generation == self._generation:
            if len(self._states) >= STATE_CACHE_ENTRIES:
                self._states.clear()
            self._states[user_id] = (time.monotonic(), state)
        return state

    async def revoke(self, user_id: str) -> None:
        """Every token of the user stops working (user-service raises its token version and announces it)."""
        self.forget(user_id)
        status, _, retry_after = await self._call(
            "POST", f"/internal/users/{user_id}/revoke-tokens", self.state_timeout
        )
        if status not in (200, 404):
            raise self._failed(status, retry_after)
