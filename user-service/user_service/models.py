"""The users table (its schema is created by the Alembic migrations beside this module)."""

from sqlalchemy import Index, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from titanium_common.clock import utc_iso
from titanium_common.db import Timestamped


class Base(DeclarativeBase):
    pass


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    # Raised by every change that must end the user's tokens (role, password, logout): a token names the
    # version it was issued under and is refused once they differ.
    token_version: Mapped[int] = mapped_column(Integer, default=0)

    # Ids are never reused (AUTOINCREMENT on SQLite; PostgreSQL sequences never go back), so a deleted user's
    # token can never name a later user; names are unique whatever their case.
    __table_args__ = (
        Index("uq_users_username_lower", func.lower(username), unique=True),
        {"sqlite_autoincrement": True},
    )

    def public(self) -> dict:
        """Everything but the password hash (which is never cached, logged or returned)."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "role": self.role,
            "created_at": utc_iso(self.created_at),
            "updated_at": utc_iso(self.updated_at),
        }
