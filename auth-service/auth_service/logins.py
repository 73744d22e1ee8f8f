"""Logins, refreshes and token checks: what the routes do, apart from reading the request."""

from dataclasses import dataclass
from typing import Any

from fastapi import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import unauthorized

from .devices import COOKIE_NAME, COOKIE_PATH, DeviceCookies
from .schemas import Login
from .sessions import RefreshTokens
from .throttle import Attempt, LoginThrottle
from .tokens import InvalidToken, TokenIssuer
from .users import UserDirectory

INVALID_LOGIN = "invalid username or password"
THROTTLED = "too many failed logins; try again later"


@dataclass(frozen=True)
class Client:
    """Who is logging in: the address, the device cookie it sent (if any), and whether it came over HTTPS."""

    address: str
    device_cookie: str | None
    secure: bool


def token_answer(
    tokens: TokenIssuer, refresh_tokens: RefreshTokens, user: dict[str, Any], refresh_token: str
) -> dict[str, Any]:
    token, _ = tokens.issue(int(user["id"]), user["username"], user["role"], user["token_version"])
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": tokens.ttl_s,
        "refresh_token": refresh_token,
        "refresh_expires_in": refresh_tokens.ttl_s,
    }


@dataclass(frozen=True)
class Logins:
    """A login: the throttle, the password check by user-service, the tokens of the new session, and the device
    cookie that keeps this client's own allowance at its next logins."""

    throttle: LoginThrottle
    users: UserDirectory
    tokens: TokenIssuer
    refresh_tokens: RefreshTokens
    devices: DeviceCookies

    async def log_in(self, body: Login, client: Client, response: Response) -> dict[str, Any]:
        """The token answer (and the device cookie on `response`); 401 for a wrong password, 429 with Retry-After
        when throttled."""
        device = self.devices.device_of(client.device_cookie, body.username)
        attempt = await self.throttle.admit(body.username, client.address, device)
        if not isinstance(attempt, Attempt):
            raise StarletteHTTPException(429, THROTTLED, headers={"Retry-After": str(attempt)})
        try:
            user = await self.users.check(body.username, body.password)
        except StarletteHTTPException:
            await self.throttle.not_checked(attempt)
            raise
        if user is None:
            await self.throttle.failed(attempt)
            raise unauthorized(INVALID_LOGIN)
        await self.throttle.succeeded(attempt)
        refresh_token = await self.refresh_tokens.start(int(user["id"]), user["token_version"])
        response.set_cookie(
            COOKIE_NAME,
            self.devices.issue(body.username, device),
            max_age=self.devices.max_age_s,
            path=COOKIE_PATH,
            secure=client.secure,
            httponly=True,
            samesite="strict",
        )
        return token_answer(self.tokens, self.refresh_tokens, user, refresh_token)


async def checked_claims(tokens: TokenIssuer, users: UserDirectory, token: str) -> dict[str, Any]:
    """The claims of a token that is well signed, unexpired, of a user who exists, and not revoked."""
    try:
        claims = tokens.verify(token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    user = await users.token_state(claims["sub"])
    if user is None:
        raise unauthorized("the user of this token no longer exists")
    if user["token_version"] != claims["ver"]:
        raise unauthorized("token revoked")
    return claims | {"role": user["role"], "username": user["username"]}
