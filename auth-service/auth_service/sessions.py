"""Refresh tokens: issued at login, each usable once (a refresh hands out the next of the same family), stored as
digests. A token presented a second time means that two parties hold it: its whole family is revoked, and so are
the user's access tokens."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from titanium_common.clock import utcnow
from titanium_common.db import Database

from .models import RefreshToken
from .tokens import InvalidToken, digest, new_refresh_token


@dataclass(frozen=True)
class Rotation:
    """The outcome of presenting a refresh token: the next one, or a reuse that revoked the family."""

    user_id: int
    token_version: int
    next_token: str | None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RefreshTokens:
    def __init__(self, db: Database, ttl_s: int) -> None:
        self.db = db
        self.ttl_s = ttl_s

    def _row(self, token: str, family: str, user_id: int, token_version: int) -> RefreshToken:
        return RefreshToken(
            token_digest=digest(token),
            family=family,
            user_id=user_id,
            token_version=token_version,
            expires_at=utcnow() + timedelta(seconds=self.ttl_s),
        )

    async def start(self, user_id: int, token_version: int) -> str:
        """A new family, for a login: its first token. The user's expired tokens go (the table stays the size of
        the live sessions)."""
        token = new_refresh_token()
        async with self.db.transaction() as session:
            await session.execute(
                delete(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.expires_at < utcnow())
            )
            session.add(self._row(token, secrets.token_hex(16), user_id, token_version))
        return token

    async def rotate(self, token: str) -> Rotation:
        """Use `token` up: the next token of its family, or (`next_token` None) a detected reuse, after which the
        family is revoked. InvalidToken for an unknown, revoked or expired token."""
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_digest == digest(token)).with_for_update()
            )
            if row is None:
                raise InvalidToken("unknown refresh token")
            if row.revoked:
                raise InvalidToken("refresh token revoked")
            if row.used_at is not None:
                await session.execute(
                    update(RefreshToken).where(RefreshToken.family == row.family).values(revoked=True)
                )
                return Rotation(row.user_id, row.token_version, None)
            if _aware(row.expires_at) <= utcnow():
                raise InvalidToken("refresh token expired")
            row.used_at = utcnow()
            successor = new_refresh_token()
            session.add(self._row(successor, row.family, row.user_id, row.token_version))
            return Rotation(row.user_id, row.token_version, successor)

    async def revoke_family(self, token: str, *, of_user: int | None = None) -> int | None:
        """Revoke the family of `token` (logout), if it is `of_user`'s (or anyone's, for None); the id of the
        token's user either way, or None for an unknown token."""
        async with self.db.transaction() as session:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.token_digest == digest(token)))
            if row is None:
                return None
            if of_user is None or row.user_id == of_user:
                await session.execute(
                    update(RefreshToken).where(RefreshToken.family == row.family).values(revoked=True)
                )
            return row.user_id
