"""Who may use the operations: the REST routes and `/mcp` both need an admin's token."""

from fastapi import HTTPException, Request

from titanium_common.auth_client import Identity, TokenVerifier


async def admin_identity(verifier: TokenVerifier, request: Request) -> Identity:
    """401 without a valid token, 403 for a valid token without the admin role, 503 if auth-service is down."""
    identity = await verifier.identity_of(request, required=True)
    if not identity.is_admin:
        raise HTTPException(403, f"user {identity.username!r} is not an admin; operations need the admin role")
    return identity
