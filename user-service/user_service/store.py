"""Users: registration, reads, changes, deletion and the credential check auth-service uses."""

import contextlib
import logging
from typing import Any

from sqlalchemy import func, select

from titanium_common.db import ConflictError, Database, NotFoundError
from titanium_common.revocations import RevocationFeed
from titanium_common.versioned_cache import VersionedCache

from .models import User
from .passwords import Passwords, PasswordsBusy

log = logging.getLogger("user_service.store")

TAKEN = "username or email already registered"

# What the cached user reads depend on: any committed change of a user (a registration changes no other user's
# answer, as ids are never reused).
USERS = "users"
CHANGES = (USERS,)


class AdminNotCreated(RuntimeError):
    """The admin of ADMIN_USERNAME does not exist and cannot be created: the service must not start without it."""


class UserStore:
    def __init__(
        self,
        db: Database,
        cache: VersionedCache,
        passwords: Passwords,
        revocations: RevocationFeed,
        *,
        check_budget_s: float,
        hash_budget_s: float,
    ) -> None:
        self.db = db
        self.cache = cache
        self.passwords = passwords
        self.revocations = revocations
        self.check_budget_s = check_budget_s
        self.hash_budget_s = hash_budget_s

    async def create(self, username: str, email: str, password: str, role: str = "user") -> dict[str, Any]:
        password_hash = await self.passwords.hash(password, budget_s=self.hash_budget_s)
        async with self.db.transaction(TAKEN) as session:
            user = User(username=username, email=email.lower(), password_hash=password_hash, role=role)
            session.add(user)
            await session.flush()
            record = user.public()
        log.info("registered user %d (%s)", record["id"], username)
        return record

    async def get(self, user_id: int) -> dict[str, Any]:
        """The user from the database (the routes keep its answer in `cache`)."""
        async with self.db.sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        return user.public()

    async def page(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        async with self.db.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(User))
            users = await session.scalars(select(User).order_by(User.id).offset((page - 1) * size).limit(size))
            return [u.public() for u in users], total or 0

    async def count(self) -> int:
        async with self.db.sessions() as session:
            return await session.scalar(select(func.count()).select_from(User)) or 0

    async def update(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes`; a new password or a different role ends the user's tokens."""
        if "password" in changes:
            changes["password_hash"] = await self.passwords.hash(changes.pop("password"), budget_s=self.hash_budget_s)
        if "email" in changes:
            changes["email"] = changes["email"].lower()
        async with self.db.transaction(TAKEN) as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFoundError(f"user {user_id} not found")
            revoke = "password_hash" in changes or changes.get("role", user.role) != user.role
            for field, value in changes.items():
                setattr(user, field, value)
            if revoke:
                user.token_version += 1
            await session.flush()
            record = user.public()
        await self.cache.changed(USERS)
        if revoke:
            await self.revocations.publish(user_id)
        return record

    async def delete(self, user_id: int) -> None:
        async with self.db.transaction() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"user {user_id} not found")
            await session.delete(user)
        await self.cache.changed(USERS)
        await self.revocations.publish(user_id)
        log.info("deleted user %d", user_id)

    async def revoke_tokens(self, user_id: int) -> int:
        """End every token of the user (logout, a reused refresh token); the new token version."""
        async with self.db.transaction() as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFoundError(f"user {user_id} not found")
            user.token_version += 1
            version = user.token_version
        await self.cache.changed(USERS)  # its `updated_at` moved
        await self.revocations.publish(user_id)
        log.info("revoked the tokens of user %d", user_id)
        return version

    async def token_state(self, user_id: int) -> dict[str, Any]:
        """What a token of this user must match: the user exists, with this role and token version."""
        async with self.db.sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        return {"id": user.id, "username": user.username, "role": user.role, "token_version": user.token_version}

    async def check_credentials(self, username: str, password: str) -> dict[str, Any] | None:
        """The user if the password matches, else None; unknown names cost as much as wrong passwords."""
        async with self.db.sessions() as session:
            user = await session.scalar(select(User).where(func.lower(User.username) == username.lower()))
        password_hash = user.password_hash if user else None
        if not await self.passwords.verify(password_hash, password, budget_s=self.check_budget_s):
            return None
        if self.passwords.needs_rehash(user.password_hash):
            with contextlib.suppress(PasswordsBusy):  # busy now: the next login re-hashes
                await self._rehash(user.id, password)
        return user.public() | {"token_version": user.token_version}

    async def _rehash(self, user_id: int, password: str) -> None:
        """The same password under the current parameters: no security change, so tokens stay valid."""
        password_hash = await self.passwords.hash(password, budget_s=self.hash_budget_s)
        async with self.db.transaction() as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is not None:
                user.password_hash = password_hash
        await self.cache.changed(USERS)  # its `updated_at` moved

    async def ensure_admin(self, username: str, password: str, email: str) -> None:
        """The first admin, from the environment; an existing account of that name is left as it is. An e-mail
        that another account already has stops the start-up (AdminNotCreated), rather than leaving no admin."""
        if await self._user_id_named(username) is not None:
            return
        try:
            await self.create(username, email, password, role="admin")
        except ConflictError:
            if await self._user_id_named(username) is not None:  # another replica created it at the same moment
                return
            raise AdminNotCreated(
                f"cannot create the admin {username!r} from ADMIN_USERNAME: its e-mail {email!r} (ADMIN_EMAIL) "
                "belongs to another account; set ADMIN_EMAIL to a free address, or start from empty data "
                "(make clean-data removes .data/)"
            ) from None
        log.info("created the first admin %r from ADMIN_USERNAME", username)

    async def _user_id_named(self, username: str) -> int | None:
        async with self.db.sessions() as session:
            return await session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
