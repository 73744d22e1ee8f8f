"""user-service's public API (routes only; the logic lives in store.py)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import Identity
from titanium_common.fastapi_app import RowId

from .store import UserStore

router = APIRouter()
internal = APIRouter()

Username = Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[EmailStr, Field(max_length=254)] | None = None
    password: Password | None = None
    role: Literal["user", "admin"] | None = None


class Credentials(BaseModel):
    username: Annotated[str, Field(max_length=128)]
    password: Annotated[str, Field(max_length=1024)]


def _store(request: Request) -> UserStore:
    return request.app.state.store


async def _identity(request: Request, *, required: bool) -> Identity | None:
    return await request.app.state.verifier.identity_of(request, required=required)


def _shown_to(viewer: Identity | None, record: dict[str, Any]) -> dict[str, Any]:
    """Email only for the user themself and admins."""
    if viewer is not None and (viewer.is_admin or viewer.user_id == record["id"]):
        return record
    return {k: v for k, v in record.items() if k != "email"}


async def _viewer(request: Request) -> Identity | None:
    """Reads work without a token; a token that cannot be checked only hides emails."""
    try:
        return await _identity(request, required=False)
    except StarletteHTTPException as exc:
        if exc.status_code == 503:
            return None
        raise


def _may_change(identity: Identity, user_id: int) -> None:
    if not (identity.is_admin or identity.user_id == user_id):
        raise HTTPException(403, "only the user themself or an admin may do this")


@router.post("/api/users", status_code=201)
async def register(body: Registration, request: Request) -> dict[str, Any]:
    return await _store(request).create(body.username, body.email, body.password)


@router.post("/api/register", status_code=201)
async def register_original(body: Registration, request: Request) -> dict[str, Any]:
    """The original clients' path; they read `status`."""
    return {"status": "success", **await _store(request).create(body.username, body.email, body.password)}


@router.get("/api/users")
async def list_users(
    request: Request, page: Annotated[int, Query(ge=1, le=100_000)] = 1, size: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    viewer = await _viewer(request)
    users, total = await _store(request).page(page, size)
    return {"items": [_shown_to(viewer, u) for u in users], "total": total, "page": page, "size": size}


@router.get("/api/users/{user_id}")
async def get_user(user_id: RowId, request: Request) -> dict[str, Any]:
    viewer = await _viewer(request)
    return _shown_to(viewer, await _store(request).get(user_id))


@router.patch("/api/users/{user_id}")
async def change_user(user_id: RowId, body: UserChange, request: Request) -> dict[str, Any]:
    identity = await _identity(request, required=True)
    _may_change(identity, user_id)
    changes = body.model_dump(exclude_none=True)
    if "role" in changes and not identity.is_admin:
        raise HTTPException(403, "only an admin may change a role")
    if not changes:
        raise HTTPException(422, "nothing to change: give email, password or role")
    return await _store(request).update(user_id, changes)


@router.delete("/api/users/{user_id}", status_code=204)
async def delete_user(user_id: RowId, request: Request) -> None:
    identity = await _identity(request, required=True)
    _may_change(identity, user_id)
    await _store(request).delete(user_id)


@internal.post("/internal/credentials/verify")
async def verify_credentials(body: Credentials, request: Request) -> dict[str, Any]:
    """For auth-service only (the gateway never routes /internal): the user if the password matches."""
    user = await _store(request).check_credentials(body.username, body.password)
    if user is None:
        raise HTTPException(401, "invalid username or password")
    return {
        "valid": True,
        "id": user["id"],
        "username": user["username"],
        "role": user["role"],
        "token_version": user["token_version"],
    }


@internal.get("/internal/users/{user_id}/token-state")
async def token_state(user_id: RowId, request: Request) -> dict[str, Any]:
    """For auth-service: whether the user exists, and the token version its tokens must carry."""
    return await _store(request).token_state(user_id)


@internal.post("/internal/users/{user_id}/revoke-tokens")
async def revoke_tokens(user_id: RowId, request: Request) -> dict[str, Any]:
    """For auth-service (logout, a reused refresh token): every token of the user stops working."""
    return {"id": user_id, "token_version": await _store(request).revoke_tokens(user_id)}
