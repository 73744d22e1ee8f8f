"""The request and response models of auth-service's API."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class OriginalLoginAnswer(TokenAnswer):
    """The original system's clients read `status` and `token` (the access token)."""

    status: Literal["success"]
    token: str


class OriginalLoginFailure(BaseModel):
    """The original system's clients read `status` and `message`; `detail` and `request_id` are the suite's error
    shape."""

    status: Literal["failed"]
    message: str | list[dict[str, Any]]
    detail: str | list[dict[str, Any]]
    request_id: str


class Verified(BaseModel):
    valid: Literal[True]
    sub: str
    username: str
    role: str
    exp: int
