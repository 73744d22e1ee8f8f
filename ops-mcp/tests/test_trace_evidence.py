"""diagnose()'s trace evidence: the hop that took most of a slow request's time, or the hop that returned a failed
request's error, read from real traces whose Redis GET is a test double that sleeps."""

import asyncio
import time

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ops_mcp.diagnosis import _alerts
from ops_mcp.schemas import Alert, AlertList, Finding
from ops_mcp.traces import EVIDENCE_WINDOW_S, TraceReader, cite_traces, failing_hop, slowest_hop
from titanium_common.settings import ServiceSettings
from titanium_common.tracing import MONITORING_ATTRIBUTE, setup_tracing


async def slow_request() -> str:
    """A SERVER span with a fast query and a Redis GET that sleeps 120 ms, as the SDK records them."""
    tracing = setup_tracing(ServiceSettings(service_name="user-service"))
    tracer = tracing.tracer
    server = tracer.start_span("GET /api/users/{user_id}", kind=SpanKind.SERVER)
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        tracer.start_span("SELECT test", kind=SpanKind.CLIENT).end()
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT):
            await asyncio.sleep(0.12)  # the deliberately slowed hop
    finally:
        otel_context.detach(token)
        server.end()
    return f"{server.get_span_context().trace_id:032x}"


async def failed_request(route: str = "GET /api/users/{user_id}", path: str = "/api/users/7", wait_s=0.08) -> str:
    """A request answered 500: its Redis GET waited (80 ms) and succeeded, then its query failed fast."""
    tracing = setup_tracing(ServiceSettings(service_name="user-service"))
    tracer = tracing.tracer
    server = tracer.start_span(route, kind=SpanKind.SERVER, attributes={"url.path": path})
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT):
            await asyncio.sleep(wait_s)
        query = tracer.start_span("SELECT test", kind=SpanKind.CLIENT)
        query.set_status(Status(StatusCode.ERROR))
        query.end()
    finally:
        otel_context.detach(token)
        server.set_attribute("http.response.status_code", 500)
        server.set_status(Status(StatusCode.ERROR))
        server.end()
    return f"{server.get_span_context().trace_id:032x}"


def service_finding(kind: str) -> Finding:
    service = setup_tracing(ServiceSettings(service_name="user-service")).service
    problem = f"{service} answers 30.0% of its requests with a server error" if kind == "errors" else "p95 up"
    return Finding(severity="warning", subject=service, problem=problem, evidence={}, next_step="look", kind=kind)


async def cite(findings: list[Finding], started: float) -> None:
    async with aiohttp.ClientSession() as session:
        # "Now" such that the window starts with this test: other tests' traces share the process.
        reader = TraceReader(session, {findings[0].subject: []}, 1.0)
        await cite_traces(findings, reader, started + EVIDENCE_WINDOW_S)


async def test_the_slowest_hop_is_the_one_that_waited():
    trace_id = await slow_request()
    async with aiohttp.ClientSession() as session:
        tree = await TraceReader(session, {}, 1.0).trace(trace_id)
    hop, share = slowest_hop(tree)
    assert hop.name == "GET" and hop.kind == "client"
    assert share > 0.5


async def test_a_slow_service_finding_cites_the_trace_and_its_hop():
    started = time.time()
    trace_id = await slow_request()
    service = setup_tracing(ServiceSettings(service_name="user-service")).service
    finding = Finding(
        severity="warning",
        subject=service,
        problem=f"{service} is slow: p95 130 ms against a usual 5 ms",
        evidence={"p95_ms": 130},
        next_step="look",
        kind="latency",
    )
    async with aiohttp.ClientSession() as session:
        # "Now" such that the window starts with this test's request: other tests' traces share the process.
        await cite_traces([finding], TraceReader(session, {service: []}, 1.0), started + EVIDENCE_WINDOW_S)
    cited = finding.evidence["trace"]
    assert cited["trace_id"] == trace_id and cited["duration_ms"] >= 120
    assert cited["slowest_hop"] == f"{service} → GET" and cited["share"] > 0.5
    assert f"in {service} → GET (trace {cited['trace_id'][:6]}…)" in finding.problem


async def test_slow_requests_leave_out_the_suites_own_monitoring_reads():
    started = time.time()
    tracer = setup_tracing(ServiceSettings(service_name="user-service")).tracer
    ids = {}
    for name, attributes in (("user", {}), ("poll", {MONITORING_ATTRIBUTE: True})):
        span = tracer.start_span(f"GET /api/{name}", kind=SpanKind.SERVER, attributes=attributes)
        span.end()
        ids[name] = f"{span.get_span_context().trace_id:032x}"
    async with aiohttp.ClientSession() as session:
        reader = TraceReader(session, {}, 1.0)
        listed = {r.trace_id for r in (await reader.slow_requests(100, started)).requests}
        # Left out of the list, not lost: the trace itself still opens.
        assert (await reader.trace(ids["poll"])).spans
    assert ids["user"] in listed and ids["poll"] not in listed


async def test_the_failing_hop_is_the_deepest_span_that_failed_not_the_slowest():
    trace_id = await failed_request()
    async with aiohttp.ClientSession() as session:
        tree = await TraceReader(session, {}, 1.0).trace(trace_id)
    assert failing_hop(tree).name == "SELECT test"
    assert slowest_hop(tree)[0].name == "GET"


async def test_an_error_finding_cites_the_hop_that_returned_the_error_a_latency_finding_the_slowest():
    started = time.time()
    trace_id = await failed_request()
    errors, latency = service_finding("errors"), service_finding("latency")
    await cite([errors, latency], started)
    service = errors.subject
    assert errors.evidence["trace"]["trace_id"] == trace_id
    assert errors.evidence["trace"]["failing_hop"] == f"{service} → SELECT test"
    assert errors.evidence["trace"]["status"] == 500
    assert f"answered 500, the error coming from {service} → SELECT test" in errors.problem
    assert latency.evidence["trace"]["slowest_hop"] == f"{service} → GET"


async def test_an_error_finding_without_a_failed_request_cites_nothing():
    started = time.time()
    await slow_request()
    errors = service_finding("errors")
    await cite([errors], started)
    assert "trace" not in errors.evidence


async def test_findings_are_matched_by_kind_not_by_words_in_their_text():
    started = time.time()
    await failed_request()
    # "error" and "slow" in the text of a finding of no kind (an unreachable service) cite nothing.
    worded = service_finding("errors").model_copy(update={"kind": None, "problem": "slow error budget"})
    await cite([worded], started)
    assert "trace" not in worded.evidence


async def test_the_suites_own_reads_are_not_cited_for_a_service_finding():
    started = time.time()
    # A /stats read sent without X-Heartbeat that failed, and took longer than the request that failed.
    stats_id = await failed_request(route="GET /stats", path="/stats", wait_s=0.16)
    await failed_request()
    errors = service_finding("errors")
    await cite([errors], started)
    assert errors.evidence["trace"]["trace_id"] != stats_id
    assert errors.evidence["trace"]["route"] == "GET /api/users/{user_id}"


def test_the_request_budget_alerts_say_what_they_measure():
    def alert(name: str) -> Alert:
        return Alert(
            name=name, severity="page", service="user-service", summary="s", description="d", starts_at="", labels={}
        )

    found = _alerts(
        AlertList(
            alerts=[
                alert(n) for n in ("TitaniumErrorBudgetFastBurn", "TitaniumLatencyBudgetBurn", "TitaniumTargetDown")
            ],
            available=True,
        )
    )
    assert [f.kind for f in found] == ["errors", "latency", None]
