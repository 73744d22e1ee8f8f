"""FastAPI dependencies the services share: what the app factory and the lifespan put on `app.state`, and who the
caller is (checked by auth-service through the app's `TokenVerifier` at `app.state.verifier`).

A service names its own aliases once, e.g. `StoreDep = Annotated[PostStore, Depends(from_state("store"))]`, and
its routes take them as parameters instead of reading `request.app.state`.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from .auth_client import Identity, TokenVerifier


def from_state(name: str) -> Callable[[HTTPConnection], Any]:
    """A dependency that gives `app.state.<name>`, for HTTP routes and WebSockets alike."""

    async def dependency(connection: HTTPConnection) -> Any:  # async: a plain def would run on the thread pool
        return getattr(connection.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


VerifierDep = Annotated[TokenVerifier, Depends(from_state("verifier"))]


async def current_user(request: Request, verifier: VerifierDep) -> Identity:
    """The caller: 401 without a valid bearer token, 503 if auth-service does not answer."""
    return await verifier.identity_of(request, required=True)


async def admin_user(request: Request, verifier: VerifierDep) -> Identity:
    """The caller if an admin: 401 without a valid token, 403 with another role."""
    return await verifier.require_role(request, "admin")


CurrentUser = Annotated[Identity, Depends(current_user)]
AdminUser = Annotated[Identity, Depends(admin_user)]
