"""blog-service's public API (routes only; the logic lives in store.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from titanium_common.contracts import errors
from titanium_common.deps import CurrentUser, from_state
from titanium_common.fastapi_app import MAX_ROW_NUMBER, RowId

from .schemas import ONE_POST, PAGE, SUMMARIES, NewPost, PostChange, PostPage, PostPublic, PostSummary, json_bytes
from .store import LISTS, POSTS, PostStore

router = APIRouter()

MAX_PAGE_SIZE = 50
JSON = "application/json"

StoreDep = Annotated[PostStore, Depends(from_state("store"))]


WRITE_ERRORS = errors(401, 403, 404, 503)


# The original system's bare list without parameters: as many as it answered.
ORIGINAL_LIST_LIMIT = 20


# The reads answer the bytes kept by the cache (titanium_common.versioned_cache); `response_model` is what they are,
# for the docs. They take the store from app.state themselves, as user-service's hottest read does: solving it as
# a dependency cost 15 % of a kept read's CPU (load-tests/README.md).
@router.get("/api/posts", response_model=list[PostSummary] | PostPage)
async def list_posts(
    request: Request,
    page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    size: Annotated[int | None, Query(ge=1, le=MAX_ROW_NUMBER)] = None,
    offset: Annotated[int | None, Query(ge=0, le=MAX_ROW_NUMBER)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_ROW_NUMBER)] = None,
) -> Response:
    """Newest first. With `page` or `size`: a page object. Otherwise the original system's bare list: the newest
    20 with no parameters (what the original system's scripts and SPA read), or `offset`/`limit`."""
    store: PostStore = request.app.state.store
    cache = store.cache
    if page is None and size is None:
        first, count = offset or 0, min(limit or ORIGINAL_LIST_LIMIT, MAX_PAGE_SIZE)
        body = await cache.answer(
            ("newest", first, count), LISTS, lambda: json_bytes(SUMMARIES, store.newest(first, count))
        )
        return Response(body, media_type=JSON)
    page, size = page or 1, min(size or 10, MAX_PAGE_SIZE)

    async def read_page() -> dict:
        items, total = await store.page((page - 1) * size, size)
        return {"items": items, "total": total, "page": page, "size": size, "pages": -(-total // size)}

    body = await cache.answer(("page", page, size), LISTS, lambda: json_bytes(PAGE, read_page()))
    return Response(body, media_type=JSON)


@router.get("/api/posts/{post_id}", response_model=PostPublic, responses=errors(404))
async def get_post(post_id: RowId, request: Request) -> Response:
    store: PostStore = request.app.state.store
    body = await store.cache.answer(("post", post_id), POSTS, lambda: json_bytes(ONE_POST, store.get(post_id)))
    return Response(body, media_type=JSON)


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
