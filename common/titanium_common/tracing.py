"""Distributed tracing for every service: OpenTelemetry's SDK, set up once per process from the standard `OTEL_*`
settings, plus a span buffer that makes traces useful with no tracing backend at all.

- A request keeps its caller's W3C `traceparent`/`tracestate` when they are well formed, else starts a new trace.
- Every request's SERVER span is a light one the kit records itself (`ProxySpan`, `ServiceSpan`: about 2 µs, where
  an SDK span costs about 20-30 µs), sampled as the SDK's sampler would decide, its context made current or
  injected into the forwarded request, handed to the buffer, and to the exporter as an SDK span when one is set.
  The two aiohttp proxies (the hot path) keep every one of them, sampled or not, for the buffer's keep rules.
- Within a FastAPI service's sampled request, SQLAlchemy's and redis-py's instrumentations make a span per query
  and per command and the official aiohttp-client trace config a CLIENT span per call of the kit's client session
  (the context injected): SDK spans, children of the SERVER span. Work outside a request (health checks, lease
  renewals, counter flushes) starts no trace: only SERVER spans may be roots. Within an unsampled request those
  instrumentations are suppressed (they would only make non-recording spans) and nothing is recorded; its
  context still goes on.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) turns on OTLP/HTTP export through the SDK's batch
  processor: a background thread with a bounded queue, so a dead or slow collector never delays a request.
- `SpanBuffer` keeps the recently finished spans (bounded by count and age) and, for longer, whole local traces
  that failed, that are among the slowest, or that a deterministic share by trace id picks (the same traces in
  every service, so that sampled traces are whole). ops-mcp reads it through `GET /internal/traces`.
"""

import collections
import contextvars
import heapq
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from random import getrandbits
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from .settings import ServiceSettings

log = logging.getLogger("titanium.tracing")

TRACE_ID_HEADER = "X-Trace-Id"
# version 00, 32 hex trace id, 16 hex parent id, 2 hex flags; an all-zero id is invalid (W3C Trace Context 3.2).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
# W3C: a tracestate of at most 32 members; vendors keep at least 512 characters. A longer or odd one is dropped.
MAX_TRACESTATE_CHARS = 512
_TRACESTATE_MEMBER = re.compile(
    r"^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$"
)
# Probes and scrapes are not traced (every few seconds from every pool and scraper).
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics", "/api/health", "/lb-health"})
_RATIO_BITS = (1 << 64) - 1
# The suite's own monitoring reads (the dashboard's polls, ops-mcp's reads of every replica) say so with this
# header, as the balancer's real-traffic rule already expects; their SERVER spans carry the attribute below, so
# that a list of slow requests can leave them out.
MONITORING_HEADER = "X-Heartbeat"
MONITORING_ATTRIBUTE = "titanium.monitoring"


def is_monitoring(header_value: str | None) -> bool:
    return header_value is not None and header_value.lower() == "true"


# Set by the proxies' middleware for their own log lines (their light spans are not the SDK's current span).
proxy_trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("proxy_trace_id", default=None)


def parse_traceparent(value: str | None) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a well-formed traceparent, else None (a new trace starts)."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def accept_tracestate(value: str | None) -> str | None:
    """The caller's tracestate if it is short and well formed (it is passed on as is), else None."""
    if not value or len(value) > MAX_TRACESTATE_CHARS:
        return None
    members = [m.strip() for m in value.split(",") if m.strip()]
    if not members or len(members) > 32 or not all(_TRACESTATE_MEMBER.match(m) for m in members):
        return None
    return value


class _RootsAreServerSpans(Sampler):
    """The configured sampler, except that a span without a parent starts a trace only if it is a SERVER span:
    background work (health checks, lease renewals, counter flushes) is not a request and records nothing."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind is not SpanKind.SERVER:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"RootsAreServerSpans{{{self.delegate.get_description()}}}"


def head_sampler(name: str, arg: str) -> tuple[Sampler, float, bool]:
    """The SDK sampler for OTEL_TRACES_SAMPLER/_ARG, with its ratio and whether it follows the parent (for the
    proxies' light spans, which decide the same way without the SDK)."""
    name = (name or "parentbased_always_on").strip().lower()
    try:
        ratio = min(max(float(arg), 0.0), 1.0) if arg else 1.0
    except ValueError:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a number: 1.0 is used", arg)
        ratio = 1.0
    parent_based = name.startswith("parentbased_")
    base = name.removeprefix("parentbased_")
    if base == "always_on":
        root, ratio = ALWAYS_ON, 1.0
    elif base == "always_off":
        root, ratio = ALWAYS_OFF, 0.0
    elif base == "traceidratio":
        root = TraceIdRatioBased(ratio)
    else:
        log.warning("OTEL_TRACES_SAMPLER=%r is not supported: parentbased_always_on is used", name)
        root, ratio, parent_based = ALWAYS_ON, 1.0, True
    return (ParentBased(root) if parent_based else root), ratio, parent_based


class FinishedSpan:
    """A finished span as the buffer keeps it (compact; turned into JSON only when asked for)."""

    __slots__ = (
        "attributes",
        "end_ns",
        "error",
        "kind",
        "name",
        "parent_id",
        "remote_parent",
        "service",
        "span_id",
        "start_ns",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int,
        remote_parent: bool,
        name: str,
        kind: str,
        start_ns: int,
        end_ns: int,
        error: bool,
        attributes: Mapping[str, Any] | None,
        service: str,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.remote_parent = remote_parent
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.error = error
        self.attributes = attributes
        self.service = service

    @property
    def local_root(self) -> bool:
        """The first span of the trace in this process: no parent, or a parent in another process."""
        return self.parent_id == 0 or self.remote_parent

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def as_json(self) -> dict[str, Any]:
        return {
            "trace_id": f"{self.trace_id:032x}",
            "span_id": f"{self.span_id:016x}",
            "parent_id": f"{self.parent_id:016x}" if self.parent_id else None,
            "service": self.service,
            "name": self.name,
            "kind": self.kind,
            "start_unix_ns": self.start_ns,
            "duration_ms": round(self.duration_ns / 1e6, 3),
            "error": self.error,
            "attributes": dict(self.span_attributes() or {}),
        }

    def span_attributes(self) -> Mapping[str, Any] | None:
        return self.attributes

    def summary(self) -> dict[str, Any]:
        attributes = self.span_attributes() or {}
        return {
            "trace_id": f"{self.trace_id:032x}",
            "root": self.name,
            "service": self.service,
            "path": attributes.get("url.path"),
            "status": attributes.get("http.response.status_code"),
            "error": self.error,
            "start_unix_ns": self.start_ns,
            "duration_ms": round(self.duration_ns / 1e6, 3),
            "remote_parent": self.remote_parent,
            "monitoring": bool(attributes.get(MONITORING_ATTRIBUTE, False)),
        }


class SpanBuffer:
    """Recently finished spans (`max_spans`, at most `max_age_s` old) and, for longer, whole local traces that
    failed, are among the `slowest` or are in the `keep_ratio` share by trace id (`max_traces` at most, each at
    most `max_age_s` old). Every operation is bounded: appending a span is O(1); keeping a trace looks back over
    at most `SCAN_LIMIT` recent spans for its children (which finished just before its local root)."""

    SCAN_LIMIT = 2048

    def __init__(self, *, max_spans: int, max_traces: int, max_age_s: float, slowest: int, keep_ratio: float) -> None:
        self.max_age_ns = int(max_age_s * 1e9)
        self.max_traces = max_traces
        self.slowest = slowest
        self.keep_bound = int(keep_ratio * _RATIO_BITS)
        self.recent: collections.deque[FinishedSpan] = collections.deque(maxlen=max_spans)
        # trace id -> (why, its spans here), oldest first.
        self.kept: collections.OrderedDict[int, tuple[str, list[FinishedSpan]]] = collections.OrderedDict()
        # (duration, trace id) of the traces kept for being slow: a min-heap of at most `slowest`.
        self._slow: list[tuple[int, int]] = []
        self.added = 0

    def add(self, span: FinishedSpan) -> None:
        self.added += 1
        recent = self.recent
        recent.append(span)
        # Spans of a kept trace that finish after its local root (rare: a fire-and-forget call) join it.
        local_root = span.parent_id == 0 or span.remote_parent
        kept = self.kept.get(span.trace_id)
        if kept is not None and not local_root:
            kept[1].append(span)
            return
        if local_root:
            why = self._why_keep(span)
            if why is not None:
                self._keep(span, why)

    def _why_keep(self, root: FinishedSpan) -> str | None:
        if root.error:
            return "error"
        if (root.trace_id & _RATIO_BITS) < self.keep_bound:
            return "sampled"
        if self.slowest <= 0:
            return None
        duration = root.duration_ns
        slow = self._slow
        if len(slow) < self.slowest:
            heapq.heappush(slow, (duration, root.trace_id))
            return "slow"
        if duration > slow[0][0]:
            _, dropped = heapq.heapreplace(slow, (duration, root.trace_id))
            entry = self.kept.get(dropped)
            if entry is not None and entry[0] == "slow":
                del self.kept[dropped]
            return "slow"
        return None

    def _keep(self, root: FinishedSpan, why: str) -> None:
        trace_id = root.trace_id
        spans = [root]
        for index, span in enumerate(reversed(self.recent)):
            if index >= self.SCAN_LIMIT or span.end_ns < root.start_ns:
                break
            if span.trace_id == trace_id and span is not root:
                spans.append(span)
        previous = self.kept.pop(trace_id, None)
        if previous is not None:  # a second local root of the trace here (the trace came back through us)
            spans.extend(s for s in previous[1] if s not in spans)
            why = previous[0] if previous[0] == "error" else why
        self.kept[trace_id] = (why, spans)
        self._expire(root.end_ns)
        while len(self.kept) > self.max_traces:
            self._forget(next(iter(self.kept)))

    def _forget(self, trace_id: int) -> None:
        why, _ = self.kept.pop(trace_id)
        if why == "slow":
            self._slow = [entry for entry in self._slow if entry[1] != trace_id]
            heapq.heapify(self._slow)

    def _expire(self, now_ns: int) -> None:
        oldest = now_ns - self.max_age_ns
        while self.kept:
            trace_id, (_, spans) = next(iter(self.kept.items()))
            if spans[0].end_ns >= oldest:
                break
            self._forget(trace_id)
        recent = self.recent
        while recent and recent[0].end_ns < oldest:
            recent.popleft()

    def _all(self, since_ns: int = 0) -> Iterable[FinishedSpan]:
        self._expire(time.time_ns())
        for _, spans in self.kept.values():
            yield from (s for s in spans if s.end_ns >= since_ns)
        yield from (s for s in self.recent if s.end_ns >= since_ns)

    def roots(self, since_ns: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """The slowest local roots finished since `since_ns` (one per trace and span), slowest first."""
        seen: dict[tuple[int, int], FinishedSpan] = {}
        for span in self._all(since_ns):
            if span.local_root:
                seen[(span.trace_id, span.span_id)] = span
        slowest = heapq.nlargest(limit, seen.values(), key=lambda s: s.duration_ns)
        return [span.summary() for span in slowest]

    def spans_of(self, trace_id: int) -> list[dict[str, Any]]:
        seen: dict[int, FinishedSpan] = {}
        for span in self._all():
            if span.trace_id == trace_id:
                seen[span.span_id] = span
        return [span.as_json() for span in sorted(seen.values(), key=lambda s: s.start_ns)]

    def figures(self) -> dict[str, int]:
        return {
            "recent_spans": len(self.recent),
            "kept_traces": len(self.kept),
            "kept_spans": sum(len(spans) for _, spans in self.kept.values()),
            "spans_seen": self.added,
        }


_KIND_NAMES = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


class _BufferProcessor(SpanProcessor):
    """Every finished SDK span, compacted into the buffer."""

    def __init__(self, buffer: SpanBuffer, service: str) -> None:
        self.buffer = buffer
        self.service = service

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        parent = span.parent
        self.buffer.add(
            FinishedSpan(
                context.trace_id,
                context.span_id,
                parent.span_id if parent is not None else 0,
                bool(parent is not None and parent.is_remote),
                span.name,
                _KIND_NAMES.get(span.kind, "internal"),
                span.start_time or 0,
                span.end_time or 0,
                span.status.status_code is StatusCode.ERROR,
                # The span's own read-only view (immutable once ended): copied only when served.
                span.attributes,
                self.service,
            )
        )


class ProxySpan(FinishedSpan):
    """One proxied request's SERVER span in the load balancer or the gateway, without the SDK's per-span cost: it
    becomes its own finished span (no second object), its attributes built only when someone reads them."""

    __slots__ = ("extra_attributes", "facts", "monitoring", "sampled", "trace_hex", "tracestate")

    def __init__(
        self, trace_id: int, span_id: int, parent_id: int, sampled: bool, tracestate: str | None, service: str
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.remote_parent = parent_id != 0
        self.sampled = sampled
        self.tracestate = tracestate
        self.service = service
        self.kind = "server"
        self.start_ns = time.time_ns()
        self.trace_hex = f"{trace_id:032x}"
        self.end_ns = 0
        self.error = False
        self.name = ""
        self.attributes = None
        # (method, path, status, route, upstream name or None, upstream URL or None), set when it ends.
        self.facts: tuple = ()
        # A monitoring read (see MONITORING_HEADER); set by the middleware, or by a route that is one by nature.
        self.monitoring = False
        # What a route adds about itself (a few per request at most).
        self.extra_attributes: dict[str, Any] | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_hex}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    def span_attributes(self) -> dict[str, Any]:
        if self.attributes is None:
            attributes = self._http_attributes()
            if self.monitoring:
                attributes[MONITORING_ATTRIBUTE] = True
            if self.extra_attributes:
                attributes.update(self.extra_attributes)
            self.attributes = attributes
        return self.attributes

    def _http_attributes(self) -> dict[str, Any]:
        method, path, status, route, upstream, upstream_url = self.facts
        attributes = {"http.request.method": method, "url.path": path, "http.response.status_code": status}
        if upstream is not None:
            attributes["titanium.upstream"] = upstream
            attributes["server.upstream.url"] = upstream_url
        else:
            attributes["http.route"] = route
        return attributes

    def span_context(self) -> SpanContext:
        state = TraceState.from_header([self.tracestate]) if self.tracestate else None
        flags = TraceFlags(TraceFlags.SAMPLED if self.sampled else TraceFlags.DEFAULT)
        return SpanContext(self.trace_id, self.span_id, is_remote=False, trace_flags=flags, trace_state=state)


class ServiceSpan(ProxySpan):
    """A FastAPI service's SERVER span: the proxies' light span with the service's own HTTP attributes."""

    __slots__ = ("route", "scope_facts", "status")

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int,
        sampled: bool,
        tracestate: str | None,
        service: str,
        method: str,
        scope: dict[str, Any],
    ) -> None:
        super().__init__(trace_id, span_id, parent_id, sampled, tracestate, service)
        self.route = ""
        self.status = 0
        if not sampled:  # never recorded: no attributes
            self.scope_facts = ()
            return
        server = scope.get("server") or ("", None)
        client = scope.get("client") or ("", None)
        # (method, path, scheme, server address, server port, client address, HTTP version)
        self.scope_facts = (
            method,
            scope["path"],
            scope.get("scheme", "http"),
            server[0],
            server[1],
            client[0],
            scope.get("http_version", "1.1"),
        )

    def _http_attributes(self) -> dict[str, Any]:
        method, path, scheme, server_address, server_port, client_address, version = self.scope_facts
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scheme,
            "server.address": server_address,
            "client.address": client_address,
            "network.protocol.version": version,
            "http.route": self.route,
            "http.response.status_code": self.status,
        }
        if server_port is not None:
            attributes["server.port"] = server_port
        return attributes


class Tracing:
    """The process's tracing: the SDK provider, the buffer, the exporter if any, and the proxies' light spans."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.service = settings.otel_service_name or settings.service_name
        self.enabled = not settings.otel_sdk_disabled
        sampler, self.ratio, self.parent_based = head_sampler(
            settings.otel_traces_sampler, settings.otel_traces_sampler_arg
        )
        self._ratio_bound = int(self.ratio * _RATIO_BITS)
        attributes = {SERVICE_NAME: self.service, SERVICE_INSTANCE_ID: getattr(settings, "replica_id", "") or ""}
        self.resource = Resource.create({k: v for k, v in attributes.items() if v})
        self.provider = TracerProvider(sampler=_RootsAreServerSpans(sampler), resource=self.resource)
        self.buffer = SpanBuffer(
            max_spans=settings.trace_buffer_spans,
            max_traces=settings.trace_buffer_traces,
            max_age_s=settings.trace_buffer_age_s,
            slowest=settings.trace_keep_slowest,
            keep_ratio=settings.trace_keep_ratio,
        )
        self.provider.add_span_processor(_BufferProcessor(self.buffer, self.service))
        self.exporting: BatchSpanProcessor | None = None
        endpoint = settings.otel_exporter_otlp_traces_endpoint or settings.otel_exporter_otlp_endpoint
        if endpoint and self.enabled:
            self.exporting = BatchSpanProcessor(_otlp_exporter(settings))
            self.provider.add_span_processor(self.exporting)
        self.tracer = self.provider.get_tracer("titanium")
        self._scope = self.tracer.instrumentation_scope if hasattr(self.tracer, "instrumentation_scope") else None

    # The proxies' light spans
    def start_proxy_span(self, traceparent: str | None, tracestate: str | None) -> ProxySpan:
        return ProxySpan(*self._decide(traceparent, tracestate), self.service)

    def _decide(self, traceparent: str | None, tracestate: str | None) -> tuple[int, int, int, bool, str | None]:
        """(trace id, new span id, parent span id or 0, sampled, tracestate to pass on) for a request's SERVER
        span: the caller's context if well formed, else a new trace; sampled as the SDK's sampler would."""
        parent = parse_traceparent(traceparent) if traceparent else None
        if parent is None:
            trace_id = getrandbits(128) or 1
            return trace_id, getrandbits(64) or 1, 0, self._sample_root(trace_id), None
        trace_id, parent_id, parent_sampled = parent
        sampled = parent_sampled if self.parent_based else self._sample_root(trace_id)
        return trace_id, getrandbits(64) or 1, parent_id, sampled, accept_tracestate(tracestate)

    def _sample_root(self, trace_id: int) -> bool:
        return (trace_id & _RATIO_BITS) < self._ratio_bound

    def end_proxy_span(self, span: ProxySpan, name: str, facts: tuple, error: bool) -> None:
        """`facts`: see ProxySpan.facts."""
        span.facts = facts
        self._finish(span, name, error)

    def _finish(self, span: ProxySpan, name: str, error: bool) -> None:
        span.end_ns = time.time_ns()
        span.name = name
        span.error = error
        self.buffer.add(span)
        if self.exporting is not None:
            self.exporting.on_end(self._readable(span))

    def _readable(self, span: ProxySpan) -> ReadableSpan:
        parent = None
        if span.parent_id:
            parent = SpanContext(span.trace_id, span.parent_id, is_remote=True, trace_flags=TraceFlags(1))
        return ReadableSpan(
            name=span.name,
            context=span.span_context(),
            parent=parent,
            resource=self.resource,
            attributes=span.span_attributes(),
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR) if span.error else Status(StatusCode.UNSET),
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=self._scope,
        )

    # The FastAPI services' SERVER spans
    def start_server_span(
        self,
        traceparent: str | None,
        tracestate: str | None,
        method: str,
        scope: dict[str, Any],
        monitoring: bool = False,
    ) -> tuple[ServiceSpan, object]:
        """The request's SERVER span, its context made current; returns it and the token for end_server_span.

        A light span like the proxies' (the SDK's span with its attribute checks and locks measured about 30 µs of
        a user-service cache hit's 155), decided as the SDK's sampler would; the SDK spans of the request's
        queries, Redis commands and calls are its children. An unsampled request records nothing here and
        suppresses those instrumentations (see `_unsampled`)."""
        span = ServiceSpan(*self._decide(traceparent, tracestate), self.service, method, scope)
        span.monitoring = monitoring
        if not span.sampled:
            return span, _unsampled(span.span_context())
        return span, otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span.span_context())))

    def end_server_span(self, span: ServiceSpan, token: object, method: str, route: str, status: int) -> None:
        otel_context.detach(token)
        if span.sampled:
            span.route = route
            span.status = status
            self._finish(span, f"{method} {route}", status >= 500)

    def use_proxy_span(self, span: ProxySpan) -> object:
        """Make a light span the current context (for outbound calls of the proxy's own routes); returns the token
        for `otel_context.detach`."""
        return otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span.span_context())))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _unsampled(span_context: SpanContext) -> object:
    """Make an unsampled request's context current, with the instrumentations suppressed: its Redis commands,
    queries and outbound calls would only make non-recording spans (no child of an unsampled span is sampled, the
    ratio being by trace id), yet each cost the instrumentation's span and attribute work. Outbound calls still
    carry the trace context (`_pass_unsampled_context`). Returns the token for `otel_context.detach`."""
    span = trace.NonRecordingSpan(span_context)
    return otel_context.attach(
        otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, trace.set_span_in_context(span))
    )


async def _pass_unsampled_context(session, trace_config_ctx, params) -> None:
    """aiohttp-client hook: within an unsampled request the official instrumentation is suppressed (see
    `_unsampled`), so the trace context goes on here: the callee joins the same trace, unsampled too."""
    if not otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
        return
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid and "traceparent" not in params.headers:
        params.headers["traceparent"] = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-00"
        if span_context.trace_state:
            params.headers["tracestate"] = span_context.trace_state.to_header()


def _otlp_exporter(settings: ServiceSettings):
    # Imported here: the exporter (and protobuf) load only where export is configured.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.otel_exporter_otlp_traces_endpoint
    if not endpoint:
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


_tracing: Tracing | None = None


def setup_tracing(settings: ServiceSettings) -> Tracing:
    """The process's tracing, built on the first call (one service per process; tests build several apps in one
    process, which share it). Instruments redis-py for the whole process."""
    global _tracing
    if _tracing is None:
        # The stable HTTP and database attribute names (http.request.method, db.query.text, ...) unless the
        # operator chose otherwise.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
        _tracing = Tracing(settings)
        trace.set_tracer_provider(_tracing.provider)
        if _tracing.enabled:
            _instrument_redis(_tracing.provider)
    return _tracing


def current_tracing() -> Tracing | None:
    return _tracing


def _instrument_redis(provider: TracerProvider) -> None:
    try:
        from opentelemetry.instrumentation.redis import RedisInstrumentor
    except ImportError:  # a service without redis-py
        return
    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def instrument_engine(engine) -> None:
    """A span per database query of this SQLAlchemy engine (an AsyncEngine's sync engine)."""
    if _tracing is None or not _tracing.enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1; its engine events are the same on 2.1
    # (the tracing tests see the queries' spans).
    SQLAlchemyInstrumentor().instrument(
        engine=getattr(engine, "sync_engine", engine),
        tracer_provider=_tracing.provider,
        enable_commenter=False,
        skip_dep_check=True,
    )


def client_trace_configs() -> list:
    """The official aiohttp-client trace config (a CLIENT span per call, its context injected), for the kit's
    client sessions; none while tracing is off."""
    if _tracing is None or not _tracing.enabled:
        return []
    import aiohttp
    from opentelemetry.instrumentation._semconv import _StabilityMode
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    unsampled = aiohttp.TraceConfig()
    unsampled.on_request_start.append(_pass_unsampled_context)
    return [
        create_trace_config(tracer_provider=_tracing.provider, sem_conv_opt_in_mode=_StabilityMode.HTTP),
        unsampled,
    ]


def current_trace_id() -> str | None:
    """The current request's trace id (32 hex digits), for log lines and error bodies."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return f"{context.trace_id:032x}"
    return proxy_trace_id_var.get()


_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LISTED_TRACES = 200
# The latest `since` taken (the year 2100).
MAX_SINCE_S = 4_102_444_800.0


class BadTraceQuery(ValueError):
    """A trace query a service cannot answer: the message says why (a 400/422 for the caller)."""


def parse_trace_id(value: str) -> int:
    value = value.strip().lower()
    if not _TRACE_ID.match(value) or int(value, 16) == 0:
        raise BadTraceQuery("a trace id is 32 hex digits, not all zero")
    return int(value, 16)


def buffer_listing(tracing: Tracing, since: str | None, limit: str | None) -> dict[str, Any]:
    """GET /internal/traces: this process's slowest local roots since `since` (unix seconds)."""
    try:
        since_s = float(since) if since else 0.0
        count = int(limit) if limit else 50
    except ValueError:
        raise BadTraceQuery("since is unix seconds and limit a whole number") from None
    if not 1 <= count <= MAX_LISTED_TRACES or not 0 <= since_s <= MAX_SINCE_S:
        raise BadTraceQuery(f"limit is 1..{MAX_LISTED_TRACES} and since a time in unix seconds")
    return {
        "service": tracing.service,
        "roots": tracing.buffer.roots(int(since_s * 1e9), count),
        "buffer": tracing.buffer.figures(),
    }


def buffer_trace(tracing: Tracing, trace_id: str) -> dict[str, Any]:
    """GET /internal/traces/{trace_id}: this process's spans of that trace (an empty list if none)."""
    return {"service": tracing.service, "spans": tracing.buffer.spans_of(parse_trace_id(trace_id))}
