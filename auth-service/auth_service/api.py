"""auth-service's public API (routes only): log in, and verify a token."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import bearer_token, unauthorized
from titanium_common.logs import current_request_id

from .tokens import InvalidToken

router = APIRouter()

INVALID_LOGIN = "invalid username or password"


class Login(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


def client_address(request: Request) -> str:
    """The client as seen by the first trusted proxy (entries before it can be forged by the client)."""
    hops = request.app.state.settings.trusted_proxy_hops
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if hops and forwarded:
        return forwarded[-min(hops, len(forwarded))]
    return request.client.host if request.client else "unknown"


async def _log_in(body: Login, request: Request) -> dict[str, Any]:
    """The token answer; 401 for a wrong password, 429 with Retry-After when throttled."""
    state = request.app.state
    address = client_address(request)
    wait = await state.throttle.retry_after(body.username, address)
    if wait is not None:
        raise HTTPException(429, "too many failed logins; try again later", headers={"Retry-After": str(wait)})
    user = await state.users.check(body.username, body.password)
    if user is None:
        await state.throttle.record_failure(body.username, address)
        raise unauthorized(INVALID_LOGIN)
    await state.throttle.record_success(body.username)
    token, _ = state.tokens.issue(user["id"], user["username"], user["role"])
    return {"access_token": token, "token_type": "bearer", "expires_in": state.tokens.ttl_s}


@router.post("/api/auth/login")
async def login(body: Login, request: Request) -> dict[str, Any]:
    return await _log_in(body, request)


@router.post("/api/login")
async def login_original(body: Login, request: Request):
    """The original clients' path: they read `status` and `token`, and `message` on failure."""
    try:
        answer = await _log_in(body, request)
    except StarletteHTTPException as exc:
        if exc.status_code != 401:
            raise
        body = {"status": "failed", "message": exc.detail, "detail": exc.detail, "request_id": current_request_id()}
        return JSONResponse(body, status_code=401, headers=exc.headers)
    return {"status": "success", "token": answer["access_token"], **answer}


@router.get("/api/auth/verify")
async def verify(request: Request) -> dict[str, Any]:
    token = bearer_token(request)
    if token is None:
        raise unauthorized("missing bearer token")
    try:
        claims = request.app.state.tokens.verify(token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    return {
        "valid": True,
        "sub": claims["sub"],
        "username": claims["username"],
        "role": claims["role"],
        "exp": claims["exp"],
    }
