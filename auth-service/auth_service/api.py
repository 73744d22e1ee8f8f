"""auth-service's public API (routes only): log in, refresh, log out, and verify a token."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import bearer_token, unauthorized
from titanium_common.contracts import errors
from titanium_common.deps import from_state
from titanium_common.logs import current_request_id
from titanium_common.throttling import client_address

from .devices import COOKIE_NAME, DeviceCookies
from .logins import Client, Logins, checked_claims, token_answer
from .schemas import (
    Login,
    LogoutRequest,
    OriginalLoginAnswer,
    OriginalLoginFailure,
    RefreshRequest,
    TokenAnswer,
    Verified,
)
from .sessions import RefreshTokens
from .settings import AuthSettings
from .throttle import LoginThrottle
from .tokens import InvalidToken, TokenIssuer
from .users import UserDirectory

router = APIRouter()

SettingsDep = Annotated[AuthSettings, Depends(from_state("settings"))]
TokensDep = Annotated[TokenIssuer, Depends(from_state("tokens"))]
RefreshTokensDep = Annotated[RefreshTokens, Depends(from_state("refresh_tokens"))]
ThrottleDep = Annotated[LoginThrottle, Depends(from_state("throttle"))]
UsersDep = Annotated[UserDirectory, Depends(from_state("users"))]
DevicesDep = Annotated[DeviceCookies, Depends(from_state("devices"))]


async def _client(request: Request, settings: SettingsDep) -> Client:
    scheme = request.headers.get("X-Forwarded-Proto", request.url.scheme)
    return Client(
        client_address(request, settings.trusted_proxy_hops), request.cookies.get(COOKIE_NAME), scheme == "https"
    )


ClientDep = Annotated[Client, Depends(_client)]


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
    """The original system's path: its clients read `status` and `token`, and `message` on any failure."""
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
    return token_answer(tokens, refresh_tokens, user, rotation.next_token)


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
            user_id = (await checked_claims(tokens, users, token))["sub"]
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


@router.get("/api/auth/verify", responses=errors(401, 503))
async def verify(request: Request, tokens: TokensDep, users: UsersDep) -> Verified:
    token = bearer_token(request)
    if token is None:
        raise unauthorized("missing bearer token")
    claims = await checked_claims(tokens, users, token)
    return {
        "valid": True,
        "sub": claims["sub"],
        "username": claims["username"],
        "role": claims["role"],
        "exp": claims["exp"],
    }
