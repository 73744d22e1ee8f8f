"""The kit's tracing: W3C context parsing, head sampling for the proxies' light spans and the services' unsampled
requests, the span buffer's bounds and keep rules, and OTEL_SERVICE_NAME naming the spans."""

import random
import time

import pytest
from aiohttp import web
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.polling import eventually
from titanium_common.http_client import create_client_session
from titanium_common.settings import ServiceSettings
from titanium_common.tracing import (
    BadTraceQuery,
    FinishedSpan,
    SpanBuffer,
    Tracing,
    accept_tracestate,
    parse_trace_id,
    parse_traceparent,
    setup_tracing,
)

GOOD = f"00-{'4bf92f3577b34da6a3ce929d0e0e4736'}-{'00f067aa0ba902b7'}-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (GOOD, (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True)),
        (GOOD[:-2] + "00", (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False)),
        # A later version may add fields after the four known ones.
        ("01" + GOOD[2:] + "-extra", (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True)),
        (GOOD + "-extra", None),  # version 00 has exactly four fields
        ("ff" + GOOD[2:], None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        (f"00-{'a' * 32}-{'0' * 16}-01", None),
        (GOOD.upper(), None),
        ("00-xyz-01", None),
        ("", None),
        ("z" * 10_000, None),
    ],
)
def test_traceparent_is_taken_only_when_well_formed(value, expected):
    assert parse_traceparent(value) == expected


def test_tracestate_is_passed_on_only_when_short_and_well_formed():
    assert accept_tracestate("vendor=abc,other@tenant=x1") == "vendor=abc,other@tenant=x1"
    assert accept_tracestate("k=" + "v" * 10_000) is None
    assert accept_tracestate("not a member") is None
    assert accept_tracestate(",".join(f"k{n}=v" for n in range(33))) is None


def test_trace_ids_in_routes_are_32_hex_digits_not_all_zero():
    assert parse_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736") == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    for bad in ("0" * 32, "4bf92f", "g" * 32):
        with pytest.raises(BadTraceQuery):
            parse_trace_id(bad)


def test_the_proxies_sample_as_the_sdk_would():
    on = Tracing(ServiceSettings(service_name="lb-on"))
    off = Tracing(
        ServiceSettings(
            service_name="lb-off", otel_traces_sampler="parentbased_traceidratio", otel_traces_sampler_arg="0"
        )
    )
    assert on.start_proxy_span(None, None).sampled
    assert not off.start_proxy_span(None, None).sampled
    # Parent-based: the caller's decision wins either way, and its trace id is kept.
    assert off.start_proxy_span(GOOD, None).sampled
    child = on.start_proxy_span(GOOD[:-2] + "00", "vendor=abc")
    assert not child.sampled and child.trace_hex == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and child.traceparent.endswith("-00")
    assert child.tracestate == "vendor=abc" and child.parent_id == 0x00F067AA0BA902B7


def span(trace_id: int, span_id: int, parent_id: int = 0, *, ms: float = 1.0, error: bool = False) -> FinishedSpan:
    end = time.time_ns()
    start = end - int(ms * 1e6)
    return FinishedSpan(trace_id, span_id, parent_id, False, "GET /x", "server", start, end, error, {}, "svc")


def test_the_buffer_is_bounded_by_count_and_keeps_errors_and_the_slowest():
    buffer = SpanBuffer(max_spans=100, max_traces=20, max_age_s=60, slowest=5, keep_ratio=0.0)
    for n in range(1, 100_001):
        buffer.add(span(n, n, ms=1.0))
    assert len(buffer.recent) == 100 and len(buffer.kept) <= 20
    buffer.add(span(200_001, 2, ms=0.5, error=True))
    buffer.add(span(200_002, 3, 200_002 + 1, ms=0.1))  # a child, finished before its root
    buffer.add(span(200_002, 200_002 + 1, ms=500.0))
    kept = {trace_id: why for trace_id, (why, _) in buffer.kept.items()}
    assert kept[200_001] == "error" and kept[200_002] == "slow"
    assert len(buffer.kept[200_002][1]) == 2, "a kept trace keeps its children"
    # Long after the recent spans rolled over, the kept traces are still there.
    for n in range(300_000, 300_500):
        buffer.add(span(n, n, ms=0.01))
    assert {s["span_id"] for s in buffer.spans_of(200_002)} == {f"{3:016x}", f"{200_003:016x}"}
    assert buffer.roots(limit=1)[0]["trace_id"] == f"{200_002:032x}"


async def test_the_buffer_forgets_what_is_older_than_its_age():
    buffer = SpanBuffer(max_spans=100, max_traces=20, max_age_s=0.05, slowest=5, keep_ratio=1.0)
    buffer.add(span(1, 1))
    assert buffer.spans_of(1)
    await eventually(lambda: buffer.spans_of(1) == [])
    assert not buffer.recent and not buffer.kept


def test_a_share_of_ordinary_traces_is_kept_the_same_in_every_service():
    """The share is chosen by trace id, so two services keep the same traces (whole trees)."""
    first = SpanBuffer(max_spans=10, max_traces=10_000, max_age_s=60, slowest=0, keep_ratio=0.25)
    second = SpanBuffer(max_spans=10, max_traces=10_000, max_age_s=60, slowest=0, keep_ratio=0.25)
    ids = [random.getrandbits(128) for _ in range(4000)]
    for n, trace_id in enumerate(ids):
        first.add(span(trace_id, n + 1))
        second.add(span(trace_id, n + 1))
    assert set(first.kept) == set(second.kept)
    assert 800 < len(first.kept) < 1200


async def test_an_unsampled_request_skips_the_instrumentations_yet_passes_its_trace_on():
    """Sampling 0: the request's Redis commands and queries make no span (their instrumentations see it
    suppressed), while an outbound call still carries its trace id, unsampled, so the callee joins the trace."""
    setup_tracing(ServiceSettings(service_name="kit-tests"))
    unsampled = Tracing(
        ServiceSettings(
            service_name="sample0", otel_traces_sampler="parentbased_traceidratio", otel_traces_sampler_arg="0"
        )
    )
    seen: list[str | None] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = create_client_session()
    try:
        for traceparent in (None, GOOD[:-2] + "00"):
            span, token = unsampled.start_server_span(traceparent, None, "GET", {"path": "/x"})
            try:
                assert not span.sampled and not is_instrumentation_enabled()
                async with session.get(f"http://127.0.0.1:{port}/") as answer:
                    assert answer.status == 200
            finally:
                unsampled.end_server_span(span, token, "GET", "/x", 200)
            assert seen[-1] == span.traceparent
        assert unsampled.buffer.added == 0  # an unsampled request records nothing in a service
        assert seen[-1].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")  # the caller's trace
        assert is_instrumentation_enabled()  # only within the request
    finally:
        await session.close()
        await runner.cleanup()


def test_otel_service_name_names_every_span(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "users-eu")
    tracing = Tracing(ServiceSettings(service_name="user-service"))
    exported = InMemorySpanExporter()
    # Where the OTLP exporter would be: the SDK's spans and the proxies' light ones both go through it.
    tracing.exporting = SimpleSpanProcessor(exported)
    tracing.provider.add_span_processor(tracing.exporting)
    tracing.tracer.start_span("GET /api/users", kind=SpanKind.SERVER).end()
    proxied = tracing.start_proxy_span(None, None)
    tracing.end_proxy_span(proxied, "GET api-gateway", ("GET", "/api/users", 200, "/api", None, None), False)
    # The exported spans' resource, and the spans the buffer keeps (the SDK's and the proxies' light ones).
    assert [s.resource.attributes["service.name"] for s in exported.get_finished_spans()] == ["users-eu"] * 2
    assert {root["service"] for root in tracing.buffer.roots(limit=10)} == {"users-eu"}


def test_without_otel_service_name_spans_are_named_by_the_service(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    tracing = Tracing(ServiceSettings(service_name="user-service"))
    tracing.tracer.start_span("GET /api/users", kind=SpanKind.SERVER).end()
    assert tracing.buffer.roots(limit=10)[0]["service"] == "user-service"
