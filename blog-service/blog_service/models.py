"""The posts table (its schema is created by the Alembic migrations beside this module)."""

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from titanium_common.clock import utc_iso, utcnow
from titanium_common.db import Timestamped

EXCERPT_LENGTH = 200


class Base(DeclarativeBase):
    pass


class Post(Timestamped, Base):
    __tablename__ = "posts"
    # Ids are never reused (a deleted post's links must not lead to a later post).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    content: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(Integer, index=True)
    author: Mapped[str] = mapped_column(String(32))
    # Pages are newest first.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    def summary(self) -> dict:
        excerpt = self.content if len(self.content) <= EXCERPT_LENGTH else self.content[:EXCERPT_LENGTH].rstrip() + "…"
        return {
            "id": self.id,
            "title": self.title,
            "author": self.author,
            "author_id": self.author_id,
            "created_at": utc_iso(self.created_at),
            "updated_at": utc_iso(self.updated_at),
            "excerpt": excerpt,
        }

    def full(self) -> dict:
        return self.summary() | {"content": self.content}
