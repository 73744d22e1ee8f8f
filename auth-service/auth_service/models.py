"""Refresh tokens (the schema is created by the Alembic migrations beside this module)."""

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from titanium_common.db import Timestamped


class Base(DeclarativeBase):
    pass


class RefreshToken(Timestamped, Base):
    """One refresh token: only its digest is kept. A login starts a family; each refresh replaces the token
    with the next one of the family; a token used twice revokes its family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    # The user's token version at login: a later security change (logout, new password, role) ends the family.
    token_version: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
