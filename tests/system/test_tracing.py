"""Tracing through the real suite: spans exported over OTLP/HTTP to a receiver started here (decoded with
opentelemetry-proto), the caller's trace context kept or refused and carried through the suite's own fan-outs,
Redis commands as spans, the trace id in JSON log lines, a dead or hung collector costing requests nothing, and
ops-mcp's traces read from the services' span buffers."""

import contextlib
import json
import random
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from load_balancer.stats import FANOUT_TRACE_ATTRIBUTE
from tests.support.polling import eventually
from tests.support.servers import free_port
from titanium_dev.suite import SERVICES, Suite

from .conftest import ADMIN, OUTPUT


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint: every span received, by trace id; `hang()` makes it hold each export open
    (a collector that stopped answering) until `release()`."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []  # (service.name, Span)
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.released = threading.Event()
        self.released.set()
        self.exports_held = 0
        # (service, when) of each export held: an exporter sends its next one only once it gave up on the last.
        self.holds: list[tuple[str, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received = [
                    ({a.key: a.value.string_value for a in resource.resource.attributes}["service.name"], span)
                    for resource in request.resource_spans
                    for scope_spans in resource.scope_spans
                    for span in scope_spans.spans
                ]
                if not receiver.released.is_set():
                    with receiver.lock:
                        receiver.exports_held += 1
                        receiver.holds += [(service, time.monotonic()) for service in {s for s, _ in received}]
                    receiver.held.set()
                    receiver.released.wait(30)
                with receiver.lock:
                    receiver.spans += received
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_trace(self, trace_id: str) -> list[tuple[str, object]]:
        with self.lock:
            return [(service, span) for service, span in self.spans if span.trace_id.hex() == trace_id]

    def hang(self) -> None:
        self.held.clear()
        self.holds.clear()
        self.released.clear()

    def given_up(self) -> dict[str, tuple[float, float]]:
        """Each service whose exporter gave up on a held export (it sent another): when the first was held, and
        when the next arrived."""
        with self.lock:
            times: dict[str, list[float]] = {}
            for service, when in self.holds:
                times.setdefault(service, []).append(when)
        return {service: (held[0], held[1]) for service, held in times.items() if len(held) >= 2}

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced_suite(receiver, tmp_path_factory):
    OUTPUT.mkdir(exist_ok=True)
    ports = {spec.name: free_port() for spec in SERVICES}
    environment = {
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        # Batches every 100 ms (the SDK's own variable), so that the test's spans arrive soon.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "LOG_FORMAT": "json",
        # A hung collector is given up on after 2 s rather than 10 (the SDK's variable, in seconds).
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2",
    }
    with (
        open(OUTPUT / "tracing-suite.log", "w") as log,
        Suite(ports=ports, data_dir=tmp_path_factory.mktemp("data"), echo=log, extra_env=environment) as running,
    ):
        yield running


@pytest.fixture
async def lb(traced_suite):
    async with httpx.AsyncClient(base_url=traced_suite.url("load-balancer"), timeout=30) as client:
        yield client


def client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def register_and_login(lb: httpx.AsyncClient, headers: dict[str, str]) -> str:
    username = f"tracer{random.randrange(10**9)}"
    account = {"username": username, "email": f"{username}@example.com", "password": "password-123"}
    assert (await lb.post("/api/users", json=account)).status_code == 201
    login = await lb.post("/api/auth/login", json={"username": username, "password": "password-123"}, headers=headers)
    assert login.status_code == 200, login.text
    return login.json()["access_token"]


async def test_a_login_and_a_post_are_one_trace_across_five_services(lb, receiver):
    trace_id, client_span, traceparent = client_traceparent()
    headers = {"traceparent": traceparent, "tracestate": "vendor=abc"}
    token = await register_and_login(lb, headers)
    created = await lb.post(
        "/api/posts",
        json={"title": "traced", "content": "one request, one trace"},
        headers={**headers, "Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Trace-Id"] == trace_id

    wanted = {"load-balancer", "api-gateway", "auth-service", "user-service", "blog-service"}
    # Every span read below: a service's spans of one trace may come in more than one export (each service
    # exports on its own schedule), so one of them being in says nothing of the others.
    wanted_spans = {
        ("api-gateway", "POST auth-service"),
        ("auth-service", "POST /api/auth/login"),
        ("user-service", "POST /internal/credentials/verify"),
        ("blog-service", "POST /api/posts"),
        ("auth-service", "GET /api/auth/verify"),
    }
    wanted_queries = {("user-service", "sqlite"), ("blog-service", "sqlite")}

    def db_systems(spans: list) -> set[tuple[str, str]]:
        return {
            (service, a.value.string_value)
            for service, span in spans
            for a in span.attributes
            if a.key == "db.system.name"
        }

    def whole() -> list | None:
        """The trace's spans once every service's are in, every span read below with them, and every span's parent
        is among them or is the client's span: one tree, nothing orphaned."""
        spans = receiver.of_trace(trace_id)
        ids = {span.span_id.hex() for _, span in spans} | {client_span}
        linked = all(span.parent_span_id.hex() in ids for _, span in spans)
        names = {(service, span.name) for service, span in spans}
        complete = wanted <= {service for service, _ in spans} and wanted_spans <= names
        return spans if linked and complete and wanted_queries <= db_systems(spans) else None

    spans = await eventually(whole, timeout_s=20)
    by_id = {span.span_id.hex(): (service, span) for service, span in spans}
    roots = [(service, span.name) for service, span in spans if span.parent_span_id.hex() == client_span]
    assert sorted(roots) == [("load-balancer", "POST api-gateway"), ("load-balancer", "POST api-gateway")]

    def parent_service(span) -> str:
        return by_id[span.parent_span_id.hex()][0]

    named = {(service, span.name): span for service, span in spans}
    # balancer -> gateway -> the services' routes; auth -> user (password check); blog -> auth (token check).
    assert parent_service(named[("api-gateway", "POST auth-service")]) == "load-balancer"
    assert parent_service(named[("auth-service", "POST /api/auth/login")]) == "api-gateway"
    assert parent_service(named[("user-service", "POST /internal/credentials/verify")]) == "auth-service"
    assert parent_service(named[("blog-service", "POST /api/posts")]) == "api-gateway"
    assert parent_service(named[("auth-service", "GET /api/auth/verify")]) == "blog-service"
    # Database queries and Redis commands are spans of their own, with the database conventions' attributes.
    kinds = {(service, span.kind) for service, span in spans}
    assert ("blog-service", 3) in kinds  # SPAN_KIND_CLIENT: a query or an outbound call
    route = named[("blog-service", "POST /api/posts")]
    attributes = {a.key: a.value for a in route.attributes}
    assert attributes["http.route"].string_value == "/api/posts"
    assert attributes["http.request.method"].string_value == "POST"
    assert attributes["http.response.status_code"].int_value == 201


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-not-a-trace-01"},
        {"traceparent": f"00-{'0' * 32}-{'1' * 16}-01"},
        {"traceparent": f"00-{'a' * 32}-{'0' * 16}-01"},
        {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01", "tracestate": "k=" + "v" * 10_000},
        {"traceparent": "zz" * 400},
    ],
    ids=["malformed", "zero-trace-id", "zero-parent-id", "10kb-tracestate", "garbage"],
)
async def test_a_bad_trace_context_starts_a_new_trace_and_is_never_an_error(lb, headers):
    answer = await lb.get("/api/posts", headers=headers)
    assert answer.status_code == 200
    trace_id = answer.headers["X-Trace-Id"]
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    if headers["traceparent"].startswith(f"00-{'a' * 32}-{'b'}"):
        assert trace_id == "a" * 32, "a good traceparent is kept, only the oversized tracestate is dropped"
    else:
        assert trace_id not in headers["traceparent"]


async def test_errors_carry_the_trace_id(lb):
    trace_id, _, traceparent = client_traceparent()
    refused = await lb.post("/api/posts", json={"title": "x", "content": "y"}, headers={"traceparent": traceparent})
    assert refused.status_code == 401
    assert refused.json()["trace_id"] == trace_id == refused.headers["X-Trace-Id"]
    missing = await lb.get("/api/no-such-route", headers={"traceparent": traceparent})
    assert missing.status_code == 404 and missing.json()["trace_id"] == trace_id


def attribute_values(span) -> dict[str, object]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


async def test_redis_commands_are_spans_of_a_traced_request(lb, receiver):
    trace_id, _, traceparent = client_traceparent()
    await register_and_login(lb, {"traceparent": traceparent})

    def redis_spans() -> list | None:
        spans = [
            span
            for service, span in receiver.of_trace(trace_id)
            if service == "auth-service" and "redis" in attribute_values(span).values()
        ]
        return spans or None

    # A login goes through auth-service's throttle, whose counters are Redis scripts: CLIENT spans of the request.
    spans = await eventually(redis_spans, timeout_s=20)
    assert all(span.kind == 3 for span in spans)  # SPAN_KIND_CLIENT


async def fan_out_spans(receiver: OtlpReceiver, trace_id: str, caller: str, services: set[str]) -> dict[str, list]:
    """Each of `services`' SERVER spans in the trace whose parent is a span of `caller` (its call to them)."""

    def found() -> dict[str, list] | None:
        spans = receiver.of_trace(trace_id)
        of_caller = {span.span_id.hex() for service, span in spans if service == caller}
        called: dict[str, list] = {}
        for service, span in spans:
            if service in services and span.kind == 2 and span.parent_span_id.hex() in of_caller:  # SERVER
                called.setdefault(service, []).append(span)
        return called if set(called) == services else None

    return await eventually(found, timeout_s=20)


async def test_the_balancers_stats_fan_out_carries_the_trace(lb, receiver):
    trace_id, _, traceparent = client_traceparent()
    answer = await lb.get("/stats", headers={"traceparent": traceparent})
    assert answer.status_code == 200 and answer.headers["X-Trace-Id"] == trace_id

    def balancer_span():
        spans = receiver.of_trace(trace_id)
        return next((span for service, span in spans if service == "load-balancer" and span.kind == 2), None)

    # The answer may be one another caller's fan-out built (ops-mcp's sampler reads /stats every few seconds): the
    # span names the trace that holds the calls, its own or that caller's.
    fanout_trace_id = attribute_values(await eventually(balancer_span, timeout_s=20))[FANOUT_TRACE_ATTRIBUTE]
    called = await fan_out_spans(
        receiver, fanout_trace_id, "load-balancer", {"user-service", "blog-service", "auth-service"}
    )
    assert all(span.name == "GET /stats" for spans in called.values() for span in spans)


async def test_ops_mcps_calls_to_the_services_carry_the_trace(lb, receiver):
    trace_id, _, traceparent = client_traceparent()
    answer = await lb.get("/api/ops/diagnosis", headers={"traceparent": traceparent})
    assert answer.status_code == 200, answer.text
    await fan_out_spans(receiver, trace_id, "ops-mcp", {"user-service", "blog-service", "auth-service"})


async def test_json_log_lines_carry_the_trace_id(lb):
    trace_id, _, traceparent = client_traceparent()
    # A 4xx answer's access line is written at INFO on every hop it passed.
    assert (await lb.get("/api/no-such-route", headers={"traceparent": traceparent})).status_code == 404

    def logged_by() -> set[str] | None:
        services = set()
        for line in (OUTPUT / "tracing-suite.log").read_text().splitlines():
            _, _, logged = line.partition("| ")
            if trace_id in logged:
                record = json.loads(logged)
                assert record["trace_id"] == trace_id, record
                services.add(record["service"])
        return services if {"load-balancer", "api-gateway"} <= services else None

    await eventually(logged_by, timeout_s=10)


async def answered_requests(lb: httpx.AsyncClient, count: int) -> list[tuple[float, float]]:
    """(seconds taken, when answered) of `count` requests in a row, each answered 200."""
    answered = []
    for _ in range(count):
        started = time.monotonic()
        assert (await lb.get("/api/posts")).status_code == 200
        answered.append((time.monotonic() - started, time.monotonic()))
    return answered


async def test_a_collector_hung_past_the_exporters_timeout_holds_no_request(lb, receiver):
    answering = await answered_requests(lb, 20)
    receiver.hang()
    try:
        # Spans to export, then wait until the exporters' requests are held by the collector.
        await lb.get("/api/posts")
        await eventually(receiver.held.is_set, timeout_s=10)
        # Requests keep coming until an exporter of a service on their path gave up on its held export (its 2 s
        # timeout) and sent the next: the collector has hung past the timeout, and every request was answered.
        route = {"load-balancer", "api-gateway", "blog-service"}
        hanging: list[tuple[float, float]] = []

        async def one_given_up() -> dict:
            hanging.extend(await answered_requests(lb, 1))
            return {s: window for s, window in receiver.given_up().items() if s in route}

        given_up = await eventually(one_given_up, timeout_s=30, every_s=0)
        assert not receiver.released.is_set()
        # Requests through that service were answered while its exporter was blocked: had the export run on the
        # request path, one request would have waited out the whole hold, not several been answered inside it.
        service, (held, next_export) = next(iter(given_up.items()))
        inside = [taken for taken, at in hanging if held < at < next_export]
        assert len(inside) >= 3, (service, len(inside))
        print(
            f"collector answering: median {statistics.median(t for t, _ in answering) * 1000:.1f} ms; hung: median "
            f"{statistics.median(t for t, _ in hanging) * 1000:.1f} ms over {len(hanging)} requests, {len(inside)} "
            f"answered while {service}'s export was held"
        )
    finally:
        receiver.release()


def test_a_dead_collector_costs_nothing(tmp_path):
    """A collector address where nothing listens: the services start and answer as usual."""
    with contextlib.ExitStack() as stack:
        ports = {spec.name: free_port() for spec in SERVICES}
        log = stack.enter_context(open(OUTPUT / "tracing-dead-collector.log", "w"))
        suite = stack.enter_context(
            Suite(
                ports=ports,
                data_dir=tmp_path,
                echo=log,
                extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
            )
        )
        with httpx.Client(base_url=suite.url("load-balancer"), timeout=10) as lb:
            for _ in range(20):
                answer = lb.get("/api/posts")
                assert answer.status_code == 200 and len(answer.headers["X-Trace-Id"]) == 32


async def test_ops_mcp_lists_the_slowest_requests_and_assembles_their_trees(lb):
    admin = await lb.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    trace_id, _, traceparent = client_traceparent()
    token = await register_and_login(lb, {"traceparent": traceparent})
    listing = await lb.get("/api/ops/traces", params={"slowest": 100}, headers=auth)
    assert listing.status_code == 200, listing.text
    login = next(r for r in listing.json()["requests"] if r["trace_id"] == trace_id)
    assert login["route"] == "POST /api/auth/login" and login["status"] == 200
    assert {"load-balancer", "api-gateway", "auth-service", "user-service"} <= set(login["services"])

    tree = (await lb.get(f"/api/ops/traces/{trace_id}", headers=auth)).json()
    spans = {span["span_id"]: span for span in tree["spans"]}
    verify = next(s for s in tree["spans"] if s["name"] == "POST /internal/credentials/verify")
    assert verify["service"] == "user-service"
    assert spans[verify["parent_id"]]["service"] == "auth-service"  # auth-service's call, a CLIENT span
    assert spans[verify["parent_id"]]["kind"] == "client"

    # Admin only, like every operations route; a bad trace id is the caller's mistake.
    assert (await lb.get("/api/ops/traces")).status_code == 401
    user = {"Authorization": f"Bearer {token}"}
    assert (await lb.get("/api/ops/traces", headers=user)).status_code == 403
    assert (await lb.get("/api/ops/traces/not-a-trace", headers=auth)).status_code == 422
    # The balancer's own buffer is on the public edge: admins only there too.
    assert (await lb.get("/internal/traces")).status_code == 401
    assert (await lb.get("/internal/traces", headers=user)).status_code == 403
