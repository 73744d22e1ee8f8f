"""The password check, delegated to user-service's internal endpoint over the kit's aiohttp session."""

from typing import Any

import aiohttp
from fastapi import HTTPException

from titanium_common.http_client import standard_timeout

USER_SERVICE = "user-service"
# Argon2 is slow on purpose (tens of ms and 64 MiB per check) and checks queue behind each other under load: the
# suite's 2 s answer timeout would turn a busy user-service into failed logins.
CREDENTIALS_CHECK_TIMEOUT = standard_timeout(response_s=5.0)


class UserDirectory:
    def __init__(self, session: aiohttp.ClientSession, user_service_url: str) -> None:
        self.session = session
        self.url = user_service_url.rstrip("/") + "/internal/credentials/verify"

    async def check(self, username: str, password: str) -> dict[str, Any] | None:
        """The user (`id`, `username`, `role`) if the password matches, None if not; 503 if user-service is down."""
        try:
            async with self.session.post(
                self.url, json={"username": username, "password": password}, timeout=CREDENTIALS_CHECK_TIMEOUT
            ) as answer:
                status = answer.status
                body = await answer.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HTTPException(503, f"{USER_SERVICE} unavailable: {type(exc).__name__}") from exc
        if status in (401, 422):
            return None
        if status != 200 or not isinstance(body, dict) or body.get("valid") is not True:
            raise HTTPException(503, f"{USER_SERVICE} answered {status}")
        return body
