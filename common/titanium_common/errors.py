"""The one error shape of the suite: {"detail": ..., "request_id": ...}."""

from typing import Any

from .logs import current_request_id
from .tracing import current_trace_id


class ServiceError(Exception):
    """An answer in the one error shape with `status_code`; `extra` adds fields (older clients' keys).

    Every app from `create_fastapi_app` turns it into its JSON answer: services raise, they register no handlers.
    """

    status_code = 500

    def __init__(self, detail: str, *, status_code: int | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra or {}


def error_body(detail: Any, request_id: str | None = None, trace_id: str | None = None) -> dict[str, Any]:
    """`trace_id` leads from a user's bug report straight to the request's trace."""
    return {
        "detail": detail,
        "request_id": request_id or current_request_id(),
        "trace_id": trace_id or current_trace_id(),
    }
