"""user-service's public API (routes only; the logic lives in store.py)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import Identity
from titanium_common.contracts import errors
from titanium_common.deps import CurrentUser, VerifierDep, from_state
from titanium_common.fastapi_app import RowId
from titanium_common.throttling import RateLimiter, client_address, retry_after

from .settings import UserSettings
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
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(max_length=128)]
    password: Annotated[str, Field(max_length=1024)]


class UserPublic(BaseModel):
    """A user as others see it: `email` and `role` only for the user themself and admins (nobody else can pick
    out the admins to aim at)."""

    id: int
    username: str
    email: str | None = None
    role: str | None = None
    created_at: str
    updated_at: str


class UserCreated(UserPublic):
    email: str
    role: str


class OriginalRegistration(UserCreated):
    """The original clients read `status`."""

    status: Literal["success"]


class UserPage(BaseModel):
    items: list[UserPublic]
    total: int
    page: int
    size: int


class CheckedCredentials(BaseModel):
    valid: Literal[True]
    id: int
    username: str
    role: str
    token_version: int


class TokenState(BaseModel):
    id: int
    username: str
    role: str
    token_version: int


class TokensRevoked(BaseModel):
    id: int
    token_version: int


StoreDep = Annotated[UserStore, Depends(from_state("store"))]
SettingsDep = Annotated[UserSettings, Depends(from_state("settings"))]
RegistrationsDep = Annotated[RateLimiter, Depends(from_state("registrations"))]


async def _registration_allowed(request: Request, settings: SettingsDep, registrations: RegistrationsDep) -> None:
    """Each client address registers REGISTRATION_BURST accounts at once, then one per REGISTRATION_INTERVAL_S."""
    address = client_address(request, settings.trusted_proxy_hops)
    wait = await registrations.acquire(
        f"register:{address}", burst=settings.registration_burst, interval_s=settings.registration_interval_s
    )
    if wait > 0:
        raise HTTPException(
            429, "too many registrations from this address; try again later", headers={"Retry-After": retry_after(wait)}
        )


RegistrationAllowed = [Depends(_registration_allowed)]


PRIVATE_FIELDS = ("email", "role")


def _shown_to(viewer: Identity | None, record: dict[str, Any]) -> dict[str, Any]:
    """Email and role only for the user themself and admins."""
    if viewer is not None and (viewer.is_admin or viewer.user_id == record["id"]):
        return record
    return {k: v for k, v in record.items() if k not in PRIVATE_FIELDS}


async def _viewer(request: Request, verifier: VerifierDep) -> Identity | None:
    """Reads work without a token; a token that cannot be checked only hides emails."""
    try:
        return await verifier.identity_of(request, required=False)
    except StarletteHTTPException as exc:
        if exc.status_code == 503:
            return None
        raise


def _may_change(identity: Identity, user_id: int) -> None:
    if not (identity.is_admin or identity.user_id == user_id):
        raise HTTPException(403, "only the user themself or an admin may do this")


Viewer = Annotated[Identity | None, Depends(_viewer)]


@router.post("/api/users", status_code=201, dependencies=RegistrationAllowed, responses=errors(409, 429, 503))
async def register(body: Registration, store: StoreDep) -> UserCreated:
    return await store.create(body.username, body.email, body.password)


@router.post("/api/register", status_code=201, dependencies=RegistrationAllowed, responses=errors(409, 429, 503))
async def register_original(body: Registration, store: StoreDep) -> OriginalRegistration:
    """The original clients' path; they read `status`."""
    return {"status": "success", **await store.create(body.username, body.email, body.password)}


@router.get("/api/users", response_model_exclude_none=True, responses=errors(401, 503))
async def list_users(
    store: StoreDep,
    viewer: CurrentUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> UserPage:
    """Signed-in callers only: anonymous callers cannot enumerate the accounts."""
    users, total = await store.page(page, size)
    return {"items": [_shown_to(viewer, u) for u in users], "total": total, "page": page, "size": size}


@router.get("/api/users/{user_id}", response_model_exclude_none=True, responses=errors(401, 404))
async def get_user(user_id: RowId, store: StoreDep, viewer: Viewer) -> UserPublic:
    return _shown_to(viewer, await store.get(user_id))


@router.patch("/api/users/{user_id}", responses=errors(401, 403, 404, 409, 503))
async def change_user(user_id: RowId, body: UserChange, store: StoreDep, identity: CurrentUser) -> UserCreated:
    _may_change(identity, user_id)
    changes = body.model_dump(exclude_none=True)
    if "role" in changes and not identity.is_admin:
        raise HTTPException(403, "only an admin may change a role")
    if not changes:
        raise HTTPException(422, "nothing to change: give email, password or role")
    return await store.update(user_id, changes)


@router.delete("/api/users/{user_id}", status_code=204, responses=errors(401, 403, 404, 503))
async def delete_user(user_id: RowId, store: StoreDep, identity: CurrentUser) -> None:
    _may_change(identity, user_id)
    await store.delete(user_id)


@internal.post("/internal/credentials/verify", responses=errors(401, 503))
async def verify_credentials(body: Credentials, store: StoreDep) -> CheckedCredentials:
    """For auth-service only (the gateway never routes /internal): the user if the password matches."""
    user = await store.check_credentials(body.username, body.password)
    if user is None:
        raise HTTPException(401, "invalid username or password")
    return {
        "valid": True,
        "id": user["id"],
        "username": user["username"],
        "role": user["role"],
        "token_version": user["token_version"],
    }


@internal.get("/internal/users/{user_id}/token-state", responses=errors(404))
async def token_state(user_id: RowId, store: StoreDep) -> TokenState:
    """For auth-service: whether the user exists, and the token version its tokens must carry."""
    return await store.token_state(user_id)


@internal.post("/internal/users/{user_id}/revoke-tokens", responses=errors(404))
async def revoke_tokens(user_id: RowId, store: StoreDep) -> TokensRevoked:
    """For auth-service (logout, a reused refresh token): every token of the user stops working."""
    return {"id": user_id, "token_version": await store.revoke_tokens(user_id)}
