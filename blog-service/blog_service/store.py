"""Posts: newest-first pages, reads, and writes that only the author or an admin may make."""

from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select

from titanium_common.auth_client import Identity
from titanium_common.db import Database, NotFoundError
from titanium_common.versioned_cache import VersionedCache

from .models import Post

# What the cached read answers depend on: the lists change with any write, a post's own answer with its update or
# delete (ids are never reused, so a new post changes no other post's answer).
LISTS = "lists"
POSTS = "posts"
CHANGES = (LISTS, POSTS)


def _newest_first(offset: int, limit: int):
    return select(Post).order_by(Post.created_at.desc(), Post.id.desc()).offset(offset).limit(limit)


class PostStore:
    """The posts table; every write tells `cache` what it changed once it has committed."""

    def __init__(self, db: Database, cache: VersionedCache) -> None:
        self.db = db
        self.cache = cache

    async def page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        async with self.db.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(Post))
            return [post.summary() for post in await session.scalars(_newest_first(offset, limit))], total or 0

    async def newest(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """`page` without the count (the original system's bare list has no total: one query, not two)."""
        async with self.db.sessions() as session:
            return [post.summary() for post in await session.scalars(_newest_first(offset, limit))]

    async def count(self) -> int:
        async with self.db.sessions() as session:
            return await session.scalar(select(func.count()).select_from(Post)) or 0

    async def get(self, post_id: int) -> dict[str, Any]:
        async with self.db.sessions() as session:
            post = await session.get(Post, post_id)
        if post is None:
            raise NotFoundError(f"post {post_id} not found")
        return post.full()

    async def create(self, author: Identity, title: str, content: str) -> dict[str, Any]:
        if author.user_id is None:
            raise HTTPException(403, "this token does not name a user")
        async with self.db.transaction() as session:
            post = Post(title=title, content=content, author_id=author.user_id, author=author.username)
            session.add(post)
            await session.flush()
            created = post.full()
        # A new post is on the pages; no other post's answer changes (ids are never reused).
        await self.cache.changed(LISTS)
        return created

    async def _owned(self, session, post_id: int, editor: Identity) -> Post:
        post = await session.get(Post, post_id, with_for_update=True)
        if post is None:
            raise NotFoundError(f"post {post_id} not found")
        if not (editor.is_admin or post.author_id == editor.user_id):
            raise HTTPException(403, "only the author or an admin may change this post")
        return post

    async def update(self, post_id: int, editor: Identity, changes: dict[str, str]) -> dict[str, Any]:
        async with self.db.transaction() as session:
            post = await self._owned(session, post_id, editor)
            for field, value in changes.items():
                setattr(post, field, value)
            await session.flush()
            updated = post.full()
        await self.cache.changed(LISTS, POSTS)
        return updated

    async def delete(self, post_id: int, editor: Identity) -> None:
        async with self.db.transaction() as session:
            await session.delete(await self._owned(session, post_id, editor))
        await self.cache.changed(LISTS, POSTS)
