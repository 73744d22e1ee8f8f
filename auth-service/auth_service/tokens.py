"""JWTs with python-jose: HS256 only (pinned on decode), `exp`, `iat` and `iss` required and checked."""

import logging
import secrets
import time
from typing import Any

from jose import ExpiredSignatureError, JWTError, jwt
from jose.exceptions import JWTClaimsError

from .settings import AuthSettings

log = logging.getLogger("auth_service.tokens")

ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
_REQUIRED = {"require_exp": True, "require_iat": True, "require_iss": True, "require_sub": True}


class InvalidToken(Exception):
    """Why a token is refused (the 401 reason)."""


def signing_secret(settings: AuthSettings) -> str:
    if settings.jwt_secret:
        if len(settings.jwt_secret) < MIN_SECRET_LENGTH and not settings.is_development:
            raise RuntimeError(f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return settings.jwt_secret
    if not settings.is_development:
        raise RuntimeError("JWT_SECRET is required (only ENV=development generates one)")
    log.warning("JWT_SECRET not set: generated a random one for this process (development only)")
    return secrets.token_urlsafe(48)


class TokenIssuer:
    def __init__(self, secret: str, issuer: str, ttl_s: int) -> None:
        self.secret = secret
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, user_id: int, username: str, role: str) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "username": username,
            "role": role,
            "iat": now,
            "exp": now + self.ttl_s,
            "iss": self.issuer,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), claims["exp"]

    def verify(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], issuer=self.issuer, options=_REQUIRED)
        except ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except JWTClaimsError as exc:
            raise InvalidToken(f"invalid claims: {exc}") from exc
        except JWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        if not isinstance(claims.get("username"), str) or not isinstance(claims.get("role"), str):
            raise InvalidToken("invalid claims: username and role are required")
        return claims
