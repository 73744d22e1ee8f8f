"""Users: registration, reads through the cache, changes, deletion and the credential check auth-service uses."""

import logging
from typing import Any

from sqlalchemy import func, select

from titanium_common.db import ConflictError, Database, NotFoundError

from .cache import UserCache
from .models import User
from .passwords import hash_password, needs_rehash, verify_password

log = logging.getLogger("user_service.store")

TAKEN = "username or email already registered"


class UserStore:
    def __init__(self, db: Database, cache: UserCache) -> None:
        self.db = db
        self.cache = cache

    async def create(self, username: str, email: str, password: str, role: str = "user") -> dict[str, Any]:
        password_hash = await hash_password(password)
        async with self.db.transaction(TAKEN) as session:
            user = User(username=username, email=email.lower(), password_hash=password_hash, role=role)
            session.add(user)
            await session.flush()
            record = user.public()
        log.info("registered user %d (%s)", record["id"], username)
        return record

    async def get(self, user_id: int) -> dict[str, Any]:
        record, version = await self.cache.get(user_id)
        if record is not None:
            return record
        async with self.db.sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        record = user.public()
        await self.cache.fill(user_id, version, record)
        return record

    async def page(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        async with self.db.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(User))
            users = await session.scalars(select(User).order_by(User.id).offset((page - 1) * size).limit(size))
            return [u.public() for u in users], total or 0

    async def count(self) -> int:
        async with self.db.sessions() as session:
            return await session.scalar(select(func.count()).select_from(User)) or 0

    async def update(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        if "password" in changes:
            changes["password_hash"] = await hash_password(changes.pop("password"))
        if "email" in changes:
            changes["email"] = changes["email"].lower()
        async with self.db.transaction(TAKEN) as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFoundError(f"user {user_id} not found")
            for field, value in changes.items():
                setattr(user, field, value)
            await session.flush()
            record = user.public()
        await self.cache.invalidate(user_id)
        return record

    async def delete(self, user_id: int) -> None:
        async with self.db.transaction() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"user {user_id} not found")
            await session.delete(user)
        await self.cache.invalidate(user_id)
        log.info("deleted user %d", user_id)

    async def check_credentials(self, username: str, password: str) -> dict[str, Any] | None:
        """The user if the password matches, else None; unknown names cost as much as wrong passwords."""
        async with self.db.sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
        if not await verify_password(user.password_hash if user else None, password):
            return None
        if needs_rehash(user.password_hash):
            await self.update(user.id, {"password": password})
        return user.public()

    async def ensure_admin(self, username: str, password: str, email: str) -> None:
        """The first admin, from the environment; an existing account of that name is left as it is."""
        async with self.db.sessions() as session:
            exists = await session.scalar(select(User.id).where(User.username == username))
        if exists is not None:
            return
        try:
            await self.create(username, email, password, role="admin")
        except ConflictError:  # another replica created it at the same moment
            return
        log.info("created the first admin %r from ADMIN_USERNAME", username)
