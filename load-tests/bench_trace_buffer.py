"""The span buffer's memory after 100,000 traced requests (numbers to read, never asserted).

Each request is what a cache hit through the suite records in one process of each kind: a proxy's light span, and
an SDK SERVER span with one CLIENT child (a Redis GET), all through the real `Tracing` of the kit with its default
bounds. tracemalloc measures what stays allocated; the buffer's own counts say what it holds.

Run: `.venv/bin/python load-tests/bench_trace_buffer.py [--requests 100000]`.
"""

import argparse
import gc
import sys
import time
import tracemalloc

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from titanium_common.settings import ServiceSettings
from titanium_common.tracing import Tracing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    settings = ServiceSettings(service_name="bench")
    tracing = Tracing(settings)
    tracer = tracing.tracer
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for n in range(args.requests):
        proxied = tracing.start_proxy_span(None, None)
        tracing.end_proxy_span(
            proxied, "GET api-gateway", ("GET", f"/api/users/{n}", 200, "/{tail}", "api-gateway", "http://gw"), False
        )
        server = tracer.start_span("GET /api/users/{id}", kind=SpanKind.SERVER, attributes={"url.path": "/x"})
        token = otel_context.attach(trace.set_span_in_context(server))
        tracer.start_span("GET", kind=SpanKind.CLIENT, attributes={"db.system.name": "redis"}).end()
        otel_context.detach(token)
        server.end()
    elapsed = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    figures = tracing.buffer.figures()
    print(f"{args.requests:,} requests ({3 * args.requests:,} spans) in {elapsed:.1f} s")
    print(f"buffer: {figures}")
    print(
        f"bounds: {settings.trace_buffer_spans} recent spans, {settings.trace_buffer_traces} kept traces, "
        f"{settings.trace_buffer_age_s:g} s"
    )
    buffered = max(figures["recent_spans"] + figures["kept_spans"], 1)
    print(f"memory held after the run: {held / 2**20:.1f} MiB ({held / buffered:.0f} bytes per buffered span)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
