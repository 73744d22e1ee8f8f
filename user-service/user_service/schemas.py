"""The request and response models of user-service's API."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter

Username = Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[EmailStr, Field(max_length=254)] | None = None
    password: Password | None = None
    role: Literal["user", "admin"] | None = None


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(max_length=128)]
    password: Annotated[str, Field(max_length=1024)]


class UserPublic(BaseModel):
    """A user as others see it: `email` and `role` only for the user themself and admins (nobody else can pick
    out the admins to aim at)."""

    id: int
    username: str
    email: str | None = None
    role: str | None = None
    created_at: str
    updated_at: str


ONE_USER = TypeAdapter(UserPublic)


def user_bytes(shown: dict[str, Any]) -> bytes:
    """What FastAPI would send for `shown` as `UserPublic` without the fields that are None (the user read's
    answer, made once and kept as bytes)."""
    return ONE_USER.dump_json(ONE_USER.validate_python(shown), exclude_none=True)


class UserCreated(UserPublic):
    email: str
    role: str


class OriginalRegistration(UserCreated):
    """The original system's clients read `status`."""

    status: Literal["success"]


class UserPage(BaseModel):
    items: list[UserPublic]
    total: int
    page: int
    size: int


class CheckedCredentials(BaseModel):
    valid: Literal[True]
    id: int
    username: str
    role: str
    token_version: int


class TokenState(BaseModel):
    id: int
    username: str
    role: str
    token_version: int


class TokensRevoked(BaseModel):
    id: int
    token_version: int
