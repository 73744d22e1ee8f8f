"""blog-service's public API (routes only; the logic lives in store.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter

from titanium_common.contracts import errors
from titanium_common.deps import CurrentUser, from_state
from titanium_common.fastapi_app import MAX_ROW_NUMBER, RowId

from .cache import LISTS, POSTS, AnswerCache
from .store import PostStore

router = APIRouter()

MAX_PAGE_SIZE = 50

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

StoreDep = Annotated[PostStore, Depends(from_state("store"))]


async def _cache(store: StoreDep) -> AnswerCache:
    return store.cache


CacheDep = Annotated[AnswerCache, Depends(_cache)]


async def _json(adapter: TypeAdapter, read) -> bytes:
    """What FastAPI would send for `read`'s result as `adapter`'s type (validated, then dumped)."""
    return adapter.dump_json(adapter.validate_python(await read))


def _json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


WRITE_ERRORS = errors(401, 403, 404, 503)


# The original clients' bare list without parameters: as many as the original answered.
ORIGINAL_LIST_LIMIT = 20


# The reads answer the bytes kept by the cache (cache.py); `response_model` is what they are, for the docs.
@router.get("/api/posts", response_model=list[PostSummary] | PostPage)
async def list_posts(
    store: StoreDep,
    cache: CacheDep,
    page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    size: Annotated[int | None, Query(ge=1, le=MAX_ROW_NUMBER)] = None,
    offset: Annotated[int | None, Query(ge=0, le=MAX_ROW_NUMBER)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_ROW_NUMBER)] = None,
) -> Response:
    """Newest first. With `page` or `size`: a page object. Otherwise the original clients' bare list: the newest
    20 with no parameters (what every original script and the original SPA read), or `offset`/`limit`."""
    if page is None and size is None:
        first, count = offset or 0, min(limit or ORIGINAL_LIST_LIMIT, MAX_PAGE_SIZE)
        body = await cache.answer(("newest", first, count), LISTS, lambda: _json(SUMMARIES, store.newest(first, count)))
        return _json_response(body)
    page, size = page or 1, min(size or 10, MAX_PAGE_SIZE)

    async def read_page() -> dict:
        items, total = await store.page((page - 1) * size, size)
        return {"items": items, "total": total, "page": page, "size": size, "pages": -(-total // size)}

    return _json_response(await cache.answer(("page", page, size), LISTS, lambda: _json(PAGE, read_page())))


@router.get("/api/posts/{post_id}", response_model=PostPublic, responses=errors(404))
async def get_post(post_id: RowId, store: StoreDep, cache: CacheDep) -> Response:
    return _json_response(await cache.answer(("post", post_id), POSTS, lambda: _json(ONE_POST, store.get(post_id))))


@router.post("/api/posts", status_code=201, responses=errors(401, 503))
async def create_post(body: NewPost, store: StoreDep, author: CurrentUser) -> PostPublic:
    return await store.create(author, body.title, body.content)


@router.patch("/api/posts/{post_id}", responses=WRITE_ERRORS)
async def change_post(post_id: RowId, body: PostChange, store: StoreDep, editor: CurrentUser) -> PostPublic:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(422, "nothing to change: give title or content")
    return await store.update(post_id, editor, changes)


@router.delete("/api/posts/{post_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_post(post_id: RowId, store: StoreDep, author: CurrentUser) -> None:
    await store.delete(post_id, author)
