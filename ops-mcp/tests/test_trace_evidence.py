"""diagnose()'s trace evidence: the hop that took most of a slow request's time, read from a real trace whose
Redis GET is a test double that sleeps."""

import asyncio
import time

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from ops_mcp.models import Finding
from ops_mcp.traces import EVIDENCE_WINDOW_S, TraceReader, cite_traces, slowest_hop
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
