"""Who may see and change which account."""

from typing import Any

from fastapi import HTTPException

from titanium_common.auth_client import Identity

PRIVATE_FIELDS = ("email", "role")


def sees_everything(viewer: Identity | None, user_id: int) -> bool:
    """Whether `viewer` sees the user's email and role: the user themself and admins do."""
    return viewer is not None and (viewer.is_admin or viewer.user_id == user_id)


def shown_to(viewer: Identity | None, record: dict[str, Any]) -> dict[str, Any]:
    """Email and role only for the user themself and admins."""
    if sees_everything(viewer, record["id"]):
        return record
    return {k: v for k, v in record.items() if k not in PRIVATE_FIELDS}


def check_may_change(identity: Identity, user_id: int) -> None:
    if not (identity.is_admin or identity.user_id == user_id):
        raise HTTPException(403, "only the user themself or an admin may do this")
