"""auth-service's public API (routes only): log in, refresh, log out, and verify a token."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import bearer_token, unauthorized
from titanium_common.contracts import errors
from titanium_common.deps import from_state
from titanium_common.logs import current_request_id
from titanium_common.throttling import client_address

from .devices import COOKIE_NAME, COOKIE_PATH, DeviceCookies
from .sessions import RefreshTokens
from .settings import AuthSettings
from .throttle import Attempt, LoginThrottle
from .tokens import InvalidToken, TokenIssuer
from .users import UserDirectory

router = APIRouter()

INVALID_LOGIN = "invalid username or password"
THROTTLED = "too many failed logins; try again later"


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class OriginalLoginAnswer(TokenAnswer):
    """The original clients read `status` and `token` (the access token)."""

    status: Literal["success"]
    token: str


class OriginalLoginFailure(BaseModel):
    """The original clients read `status` and `message`; `detail` and `request_id` are the suite's error shape."""

    status: Literal["failed"]
    message: str | list[dict[str, Any]]
    detail: str | list[dict[str, Any]]
    request_id: str


class Verified(BaseModel):
    valid: Literal[True]
    sub: str
    username: str
    role: str
    exp: int


SettingsDep = Annotated[AuthSettings, Depends(from_state("settings"))]
TokensDep = Annotated[TokenIssuer, Depends(from_state("tokens"))]
RefreshTokensDep = Annotated[RefreshTokens, Depends(from_state("refresh_tokens"))]
ThrottleDep = Annotated[LoginThrottle, Depends(from_state("throttle"))]
UsersDep = Annotated[UserDirectory, Depends(from_state("users"))]
DevicesDep = Annotated[DeviceCookies, Depends(from_state("devices"))]


@dataclass(frozen=True)
class Client:
    """Who is logging in: the address, the device cookie it sent (if any), and whether it came over HTTPS."""

    address: str
    device_cookie: str | None
    secure: bool


async def _client(request: Request, settings: SettingsDep) -> Client:
    scheme = request.headers.get("X-Forwarded-Proto", request.url.scheme)
    return Client(
        client_address(request, settings.trusted_proxy_hops), request.cookies.get(COOKIE_NAME), scheme == "https"
    )


ClientDep = Annotated[Client, Depends(_client)]


def _token_answer(
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
        return _token_answer(self.tokens, self.refresh_tokens, user, refresh_token)


async def _logins(
    throttle: ThrottleDep, users: UsersDep, tokens: TokensDep, refresh_tokens: RefreshTokensDep, devices: DevicesDep
) -> Logins:
    return Logins(throttle, users, tokens, refresh_tokens, devices)


LoginsDep = Annotated[Logins, Depends(_logins)]
LOGIN_ERRORS = errors(401, 429, 503)


@router.post("/api/auth/login", responses=LOGIN_ERRORS)
async def login(body: Login, client: ClientDep, logins: LoginsDep, response: Response) -> TokenAnswer:
    return await logins.log_in(body, client, response)


@router.post(
    "/api/login",
    response_model=OriginalLoginAnswer,
    responses=LOGIN_ERRORS | {status: {"model": OriginalLoginFailure} for status in (401, 429, 503)},
)
async def login_original(body: Login, client: ClientDep, logins: LoginsDep, response: Response) -> Any:
    """The original clients' path: they read `status` and `token`, and `message` on any failure."""
    try:
        answer = await logins.log_in(body, client, response)
    except StarletteHTTPException as exc:
        failed = {"status": "failed", "message": exc.detail, "detail": exc.detail, "request_id": current_request_id()}
        return JSONResponse(failed, status_code=exc.status_code, headers=exc.headers)
    return {"status": "success", "token": answer["access_token"], **answer}


@router.post("/api/auth/refresh", responses=errors(401, 503))
async def refresh(
    body: RefreshRequest, users: UsersDep, tokens: TokensDep, refresh_tokens: RefreshTokensDep
) -> TokenAnswer:
    """A new access token and the next refresh token; the presented one is used up. Presenting a used one again
    revokes its family and every token of its user."""
    try:
        rotation = await refresh_tokens.rotate(body.refresh_token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    if rotation.next_token is None:
        await users.revoke(str(rotation.user_id))
        raise unauthorized("refresh token already used: the session is revoked")
    user = await users.token_state(str(rotation.user_id))
    if user is None or user["token_version"] != rotation.token_version:
        raise unauthorized("session revoked")
    return _token_answer(tokens, refresh_tokens, user, rotation.next_token)


@router.post("/api/auth/logout", status_code=204, responses=errors(401, 403, 503))
async def logout(
    request: Request,
    users: UsersDep,
    tokens: TokensDep,
    refresh_tokens: RefreshTokensDep,
    body: LogoutRequest | None = None,
) -> Response:
    """Ends the session of the refresh token and every token of the user (the access token, or the refresh
    token, says who)."""
    user_id = None
    refresh_token = body.refresh_token if body is not None else None
    token = bearer_token(request)
    if token is not None:
        try:
            user_id = (await _checked_claims(tokens, users, token))["sub"]
        except StarletteHTTPException as exc:
            # An expired access token does not keep a client from ending its session with the refresh token.
            if exc.status_code != 401 or not refresh_token:
                raise
    if refresh_token:
        owner = await refresh_tokens.revoke_family(refresh_token, of_user=int(user_id) if user_id is not None else None)
        if owner is not None and user_id not in (None, str(owner)):
            raise StarletteHTTPException(403, "that refresh token belongs to another user")
        user_id = user_id or (str(owner) if owner is not None else None)
    if user_id is None:
        raise unauthorized("give a valid access token or refresh token")
    await users.revoke(user_id)
    return Response(status_code=204)


async def _checked_claims(tokens: TokenIssuer, users: UserDirectory, token: str) -> dict[str, Any]:
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


@router.get("/api/auth/verify", responses=errors(401, 503))
async def verify(request: Request, tokens: TokensDep, users: UsersDep) -> Verified:
    token = bearer_token(request)
    if token is None:
        raise unauthorized("missing bearer token")
    claims = await _checked_claims(tokens, users, token)
    return {
        "valid": True,
        "sub": claims["sub"],
        "username": claims["username"],
        "role": claims["role"],
        "exp": claims["exp"],
    }
