"""The request and response models of blog-service's API, and the adapters that turn a read into the bytes sent."""

from collections.abc import Awaitable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Content = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class NewPost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    content: Content


class PostChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    content: Content | None = None


class PostSummary(BaseModel):
    id: int
    title: str
    author: str
    author_id: int
    created_at: str
    updated_at: str
    excerpt: str


class PostPublic(PostSummary):
    content: str


class PostPage(BaseModel):
    items: list[PostSummary]
    total: int
    page: int
    size: int
    pages: int


SUMMARIES = TypeAdapter(list[PostSummary])
PAGE = TypeAdapter(PostPage)
ONE_POST = TypeAdapter(PostPublic)


async def json_bytes(adapter: TypeAdapter, read: Awaitable[Any]) -> bytes:
    """What FastAPI would send for `read`'s result as `adapter`'s type (validated, then dumped)."""
    return adapter.dump_json(adapter.validate_python(await read))
