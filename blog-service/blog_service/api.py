"""blog-service's public API (routes only; the logic lives in store.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints

from titanium_common.auth_client import Identity
from titanium_common.fastapi_app import MAX_ROW_NUMBER, RowId

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


def _store(request: Request) -> PostStore:
    return request.app.state.store


async def _author(request: Request) -> Identity:
    return await request.app.state.verifier.identity_of(request, required=True)


@router.get("/api/posts", response_model=None)
async def list_posts(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_ROW_NUMBER)] = 10,
    offset: Annotated[int | None, Query(ge=0, le=MAX_ROW_NUMBER)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_ROW_NUMBER)] = None,
) -> dict[str, Any] | list[dict[str, Any]]:
    """Newest first. `page`/`size` answer a page object; the original's `offset`/`limit` its bare list."""
    if offset is not None or limit is not None:
        return await _store(request).newest(offset or 0, min(limit or 10, MAX_PAGE_SIZE))
    size = min(size, MAX_PAGE_SIZE)
    items, total = await _store(request).page((page - 1) * size, size)
    return {"items": items, "total": total, "page": page, "size": size, "pages": -(-total // size)}


@router.get("/api/posts/{post_id}")
async def get_post(post_id: RowId, request: Request) -> dict[str, Any]:
    return await _store(request).get(post_id)


@router.post("/api/posts", status_code=201)
async def create_post(body: NewPost, request: Request) -> dict[str, Any]:
    return await _store(request).create(await _author(request), body.title, body.content)


@router.patch("/api/posts/{post_id}")
async def change_post(post_id: RowId, body: PostChange, request: Request) -> dict[str, Any]:
    editor = await _author(request)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(422, "nothing to change: give title or content")
    return await _store(request).update(post_id, editor, changes)


@router.delete("/api/posts/{post_id}", status_code=204)
async def delete_post(post_id: RowId, request: Request) -> None:
    await _store(request).delete(post_id, await _author(request))
