"""The one error shape of the suite: {"detail": ..., "request_id": ...}."""

from typing import Any

from .logs import current_request_id


def error_body(detail: Any, request_id: str | None = None) -> dict[str, Any]:
    return {"detail": detail, "request_id": request_id or current_request_id()}
