"""Traces assembled across the suite: every replica of every service keeps its recent spans (the kit's span
buffer, `GET /internal/traces`); this reads them all in parallel and puts each request's spans back together."""

import asyncio
from typing import Any

import aiohttp

from titanium_common.tracing import BadTraceQuery, current_tracing, parse_trace_id

from .reader import UpstreamError, caller_authorization
from .schemas import SlowRequest, SlowRequests, Trace, TraceSpan

# The proxies: a request's route is named by the service behind them.
PROXIES = frozenset({"load-balancer", "api-gateway"})
PER_REPLICA_ROOTS = 200
# The latest `since` taken (the year 2100): a time, not any float.
MAX_UNIX_S = 4_102_444_800.0


class TraceReader:
    def __init__(self, session: aiohttp.ClientSession, sources: dict[str, list[str]], timeout_s: float) -> None:
        self.session = session
        # Every replica's address, by service.
        self.sources = sources
        self.timeout_s = timeout_s

    async def _read(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any] | str:
        """A replica's answer, or why there is none."""
        headers = {"X-Heartbeat": "true"}
        if (authorization := caller_authorization.get()) is not None:
            headers["Authorization"] = authorization
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self.session.get(url, params=params or {}, headers=headers) as answer,
            ):
                if answer.status != 200:
                    return f"HTTP {answer.status}"
                body = await answer.json(content_type=None)
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except (aiohttp.ClientError, ValueError) as exc:
            return f"unreachable: {exc}"
        return body if isinstance(body, dict) else "not a JSON object"

    async def _everyone(self, path: str, params: dict[str, str] | None = None) -> tuple[list[dict], dict[str, str]]:
        replicas = [(service, url) for service, urls in self.sources.items() for url in urls]
        answers = await asyncio.gather(*(self._read(url + path, params) for _, url in replicas))
        found, unavailable = [], {}
        for (service, url), answer in zip(replicas, answers, strict=True):
            if isinstance(answer, str):
                unavailable[f"{service} {url}"] = answer
            else:
                found.append(answer)
        return found, unavailable

    async def slow_requests(self, slowest: int, since_s: float) -> SlowRequests:
        params = {"limit": str(PER_REPLICA_ROOTS), "since": str(since_s)}
        answers, unavailable = await self._everyone("/internal/traces", params)
        own = current_tracing()
        roots = [root for answer in answers for root in answer.get("roots", [])]
        if own is not None:
            roots += own.buffer.roots(int(since_s * 1e9), PER_REPLICA_ROOTS)
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for root in roots:
            by_trace.setdefault(root["trace_id"], []).append(root)
        # The suite's own monitoring reads (the dashboard's polls, marked with X-Heartbeat) are not requests an
        # operator is looking for: a trace any hop of which says so is left out.
        requests = [
            _summary(trace_id, found)
            for trace_id, found in by_trace.items()
            if not any(root.get("monitoring") for root in found)
        ]
        requests.sort(key=lambda r: r.duration_ms, reverse=True)
        return SlowRequests(requests=requests[:slowest], unavailable=unavailable)

    async def trace(self, trace_id: str) -> Trace:
        try:
            wanted = parse_trace_id(trace_id)
        except BadTraceQuery as exc:
            raise UpstreamError(str(exc), status_code=422) from exc
        hex_id = f"{wanted:032x}"
        answers, unavailable = await self._everyone(f"/internal/traces/{hex_id}")
        spans: dict[str, dict[str, Any]] = {}
        for answer in answers:
            spans.update((span["span_id"], span) for span in answer.get("spans", []))
        own = current_tracing()
        if own is not None:
            spans.update((span["span_id"], span) for span in own.buffer.spans_of(wanted))
        if not spans:
            raise UpstreamError(f"no spans of trace {hex_id} are kept (any more) by any replica", status_code=404)
        ordered = sorted(spans.values(), key=lambda s: s["start_unix_ns"])
        first = ordered[0]["start_unix_ns"]
        end = max(s["start_unix_ns"] + s["duration_ms"] * 1e6 for s in ordered)
        return Trace(
            trace_id=hex_id,
            duration_ms=round((end - first) / 1e6, 3),
            services=list(dict.fromkeys(s["service"] for s in ordered)),
            spans=[
                TraceSpan(
                    span_id=s["span_id"],
                    parent_id=s["parent_id"],
                    service=s["service"],
                    name=s["name"],
                    kind=s["kind"],
                    start_unix_ns=s["start_unix_ns"],
                    offset_ms=round((s["start_unix_ns"] - first) / 1e6, 3),
                    duration_ms=s["duration_ms"],
                    error=s["error"],
                    attributes=s["attributes"],
                )
                for s in ordered
            ],
            unavailable=unavailable,
        )


def _summary(trace_id: str, roots: list[dict[str, Any]]) -> SlowRequest:
    """One request from the local roots its services kept: the first hop's figures, the answering service's route."""
    roots.sort(key=lambda r: r["start_unix_ns"])
    first = next((r for r in roots if not r["remote_parent"]), roots[0])
    answering = [r for r in roots if r["service"] not in PROXIES]
    route = answering[0]["root"] if answering else first["root"]
    return SlowRequest(
        trace_id=trace_id,
        route=route,
        path=first.get("path"),
        status=first["status"],
        error=first["error"],
        duration_ms=first["duration_ms"],
        started_unix_ns=first["start_unix_ns"],
        services=list(dict.fromkeys(r["service"] for r in roots)),
    )


# How far back diagnose() looks for a trace to cite, and among how many of the slowest requests.
EVIDENCE_WINDOW_S = 300.0
CITABLE_REQUESTS = 1000
SUITE_READ_PATHS = frozenset({"/stats", "/stats/stream", "/health", "/metrics"})


def slowest_hop(tree: Trace) -> tuple[TraceSpan, float]:
    """The span that spent most of the request's time itself (its duration less its children's), and its share
    of the whole request: where a slow request actually waited."""
    children: dict[str, float] = {}
    for span in tree.spans:
        if span.parent_id is not None:
            children[span.parent_id] = children.get(span.parent_id, 0.0) + span.duration_ms
    own = {span.span_id: max(span.duration_ms - children.get(span.span_id, 0.0), 0.0) for span in tree.spans}
    hop = max(tree.spans, key=lambda span: own[span.span_id])
    return hop, own[hop.span_id] / tree.duration_ms if tree.duration_ms else 0.0


def failing_hop(tree: Trace) -> TraceSpan | None:
    """The hop that returned the error: the deepest span that failed (error status or a 5xx answer); the spans
    above it only passed the error on."""
    by_id = {span.span_id: span for span in tree.spans}

    def depth(span: TraceSpan) -> int:
        steps = 0
        while span.parent_id in by_id and steps < len(by_id):
            span, steps = by_id[span.parent_id], steps + 1
        return steps

    failed = [span for span in tree.spans if span.error or _server_error(span.attributes)]
    return max(failed, key=lambda span: (depth(span), span.start_unix_ns), default=None)


def _server_error(attributes: dict[str, Any]) -> bool:
    status = attributes.get("http.response.status_code")
    return isinstance(status, int) and status >= 500


def _suite_read(route: str) -> bool:
    """The suite's own reads of itself (/stats and its fan-out, health checks, metrics, span buffers), which a
    caller without X-Heartbeat can still make: no evidence about the requests a service finding is about."""
    path = route.rsplit(" ", 1)[-1]
    return path in SUITE_READ_PATHS or path.startswith("/internal/")


async def cite_traces(findings: list, traces: TraceReader, now_s: float) -> None:
    """Each finding about a service's errors or latency gains the trace that shows it: for errors, a failed recent
    request through that service and the hop that returned the error; for latency, the slowest recent request
    through it and the hop that took most of its time."""
    about = [f for f in findings if f.subject in traces.sources and f.kind in ("errors", "latency")]
    if not about:
        return
    recent = await traces.slow_requests(CITABLE_REQUESTS, now_s - EVIDENCE_WINDOW_S)
    requests = [r for r in recent.requests if not _suite_read(r.route)]
    for finding in about:
        through = [r for r in requests if finding.subject in r.services]
        if finding.kind == "errors":
            through = [r for r in through if r.error or (r.status or 0) >= 500]
        if not through:
            continue
        request = through[0]
        try:
            tree = await traces.trace(request.trace_id)
        except UpstreamError:
            continue
        cited: dict[str, Any] = {
            "trace_id": request.trace_id,
            "route": request.route,
            "duration_ms": request.duration_ms,
        }
        if finding.kind == "errors":
            hop = failing_hop(tree)
            if hop is None:
                continue
            where = f"{hop.service} → {hop.name}"
            status = hop.attributes.get("http.response.status_code")
            cited |= {"status": request.status, "failing_hop": where, "failing_hop_status": status}
            finding.problem += (
                f"; {request.route} answered {request.status}, the error coming from {where} "
                f"(trace {request.trace_id[:6]}…)"
            )
        else:
            hop, share = slowest_hop(tree)
            where = f"{hop.service} → {hop.name}"
            cited |= {"slowest_hop": where, "share": round(share, 3)}
            finding.problem += (
                f"; {request.route} took {request.duration_ms:.0f} ms, {share:.0%} in {where} "
                f"(trace {request.trace_id[:6]}…)"
            )
        finding.evidence["trace"] = cited
