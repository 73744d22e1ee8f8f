"""user-service's public API (routes only; the logic lives in store.py, who may see and change what in access.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from titanium_common.auth_client import Identity
from titanium_common.contracts import errors
from titanium_common.deps import CurrentUser, VerifierDep, from_state
from titanium_common.fastapi_app import RowId
from titanium_common.throttling import RateLimiter, client_address, retry_after

from .access import check_may_change, sees_everything, shown_to
from .schemas import (
    CheckedCredentials,
    Credentials,
    OriginalRegistration,
    Registration,
    TokensRevoked,
    TokenState,
    UserChange,
    UserCreated,
    UserPage,
    UserPublic,
    user_bytes,
)
from .settings import UserSettings
from .store import USERS, UserStore

router = APIRouter()
internal = APIRouter()

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


async def _viewer(request: Request, verifier: VerifierDep) -> Identity | None:
    """Reads work without a token; a token that cannot be checked only hides emails."""
    try:
        return await verifier.identity_of(request, required=False)
    except StarletteHTTPException as exc:
        if exc.status_code == 503:
            return None
        raise


@router.post("/api/users", status_code=201, dependencies=RegistrationAllowed, responses=errors(409, 429, 503))
async def register(body: Registration, store: StoreDep) -> UserCreated:
    return await store.create(body.username, body.email, body.password)


@router.post("/api/register", status_code=201, dependencies=RegistrationAllowed, responses=errors(409, 429, 503))
async def register_original(body: Registration, store: StoreDep) -> OriginalRegistration:
    """The original system's path; its clients read `status`."""
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
    return {"items": [shown_to(viewer, u) for u in users], "total": total, "page": page, "size": size}


# The answer is kept as the bytes sent (titanium_common.versioned_cache), one per view: as anyone sees the user, and
# as the user themself or an admin does. `response_model` is what it is, for the docs.
@router.get("/api/users/{user_id}", response_model=UserPublic, responses=errors(401, 404))
async def get_user(user_id: RowId, request: Request) -> Response:
    # The suite's hottest read takes what it needs from app.state itself: solving the store and viewer as
    # dependencies cost more CPU than answering a kept read.
    store: UserStore = request.app.state.store
    viewer = await _viewer(request, request.app.state.verifier)

    async def read_user() -> bytes:
        return user_bytes(shown_to(viewer, await store.get(user_id)))

    body = await store.cache.answer((user_id, sees_everything(viewer, user_id)), USERS, read_user)
    return Response(body, media_type="application/json")


@router.patch("/api/users/{user_id}", responses=errors(401, 403, 404, 409, 503))
async def change_user(user_id: RowId, body: UserChange, store: StoreDep, identity: CurrentUser) -> UserCreated:
    check_may_change(identity, user_id)
    changes = body.model_dump(exclude_none=True)
    if "role" in changes and not identity.is_admin:
        raise HTTPException(403, "only an admin may change a role")
    if not changes:
        raise HTTPException(422, "nothing to change: give email, password or role")
    return await store.update(user_id, changes)


@router.delete("/api/users/{user_id}", status_code=204, responses=errors(401, 403, 404, 503))
async def delete_user(user_id: RowId, store: StoreDep, identity: CurrentUser) -> None:
    check_may_change(identity, user_id)
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
