"""Response models every FastAPI service shares: the error body, health, readiness and the common /stats figures.

`errors(401, 404)` declares a route's error answers in its OpenAPI, each `{"detail", "request_id"}`, so the docs
and contract tests know every status a route may give besides its success.
"""

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ErrorBody(BaseModel):
    """The one error shape: `detail` is a message, or the list of validation errors for a 422."""

    detail: str | list[dict[str, Any]]
    request_id: str
    # The request's trace (32 hex digits); null when the service traces nothing.
    trace_id: str | None = None


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each status with the error body (422 is always declared, as FastAPI does)."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in (*statuses, 422)}


class Health(BaseModel):
    status: Literal["ok"]
    service: str
    version: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    service: str
    checks: dict[str, str]


class LatencyMs(BaseModel):
    p50: float
    p95: float
    p99: float


class RequestFigures(BaseModel):
    total: int
    errors: int
    requests_per_second: float
    latency_ms: LatencyMs


class ServiceStats(BaseModel):
    """The figures every service's /stats has; each service adds its own fields beside them (and, when one of its
    figures could not be read, `service_status: "degraded"` with `degraded_reasons`)."""

    model_config = ConfigDict(extra="allow")
    service: str
    version: str
    service_status: Literal["online", "degraded"]
    uptime_s: float
    requests: RequestFigures
