"""Access tokens: JWTs with python-jose, HS256 only (pinned on decode), `exp`, `iat`, `iss`, `sub` and the
user's token version `ver` required; refresh tokens: random strings, of which only a digest is stored."""

import hashlib
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
# python-jose takes "123" for a time; a token is only valid with real numbers there.
_NUMERIC_CLAIMS = ("exp", "iat", "nbf")
# Clocks of the replicas that sign may differ by this much: a token issued "later" than now by more is forged.
IAT_LEEWAY_S = 30


class InvalidToken(Exception):
    """Why a token is refused (the 401 reason). Its text is ours: never a decoder's message."""


def signing_secret(settings: AuthSettings) -> str:
    if settings.jwt_secret:
        if len(settings.jwt_secret) < MIN_SECRET_LENGTH and not settings.is_development:
            raise RuntimeError(f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return settings.jwt_secret
    if not settings.is_development:
        raise RuntimeError("JWT_SECRET is required (only ENV=development generates one)")
    log.warning("JWT_SECRET not set: generated a random one for this process (development only)")
    return secrets.token_urlsafe(48)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TokenIssuer:
    def __init__(self, secret: str, issuer: str, ttl_s: int) -> None:
        self.secret = secret
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, user_id: int, username: str, role: str, token_version: int) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "username": username,
            "role": role,
            "ver": token_version,
            "iat": now,
            "exp": now + self.ttl_s,
            "iss": self.issuer,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), claims["exp"]

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a well-signed, unexpired token of ours; InvalidToken says why not (in our words)."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], issuer=self.issuer, options=_REQUIRED)
        except ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except JWTClaimsError as exc:
            raise InvalidToken("invalid claims") from exc
        except (JWTError, ValueError, TypeError) as exc:
            raise InvalidToken("malformed or wrongly signed token") from exc
        if not all(_is_number(claims[name]) for name in _NUMERIC_CLAIMS if name in claims):
            raise InvalidToken("invalid claims: exp, iat and nbf must be numbers")
        # A token is only as long-lived as this issuer makes them: one that says otherwise was not made here, or was
        # made with a leaked key (python-jose checks neither).
        if claims["iat"] > time.time() + IAT_LEEWAY_S:
            raise InvalidToken("invalid claims: issued in the future")
        if claims["exp"] - claims["iat"] > self.ttl_s:
            raise InvalidToken(f"invalid claims: a lifetime longer than {self.ttl_s} s")
        if not isinstance(claims.get("username"), str) or not isinstance(claims.get("role"), str):
            raise InvalidToken("invalid claims: username and role are required")
        sub, version = claims.get("sub"), claims.get("ver")
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit()) or type(version) is not int:
            raise InvalidToken("invalid claims: a user id and a token version are required")
        return claims


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def digest(refresh_token: str) -> str:
    """What is stored of a refresh token: a leaked table holds no usable token."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()
