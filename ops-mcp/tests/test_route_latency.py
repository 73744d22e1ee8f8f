"""slowest_routes reads the kit's own /metrics exposition: the histograms every service renders."""

from ops_mcp.route_latency import route_latencies, slowest
from titanium_common.observability import ServiceKit
from titanium_common.settings import ServiceSettings


def test_p95_bucket_mean_and_count_per_route_template():
    kit = ServiceKit(ServiceSettings(service_name="blog-service"))
    for _ in range(19):
        kit.observe("GET", "/api/posts", "/api/posts", 200, 0.004)
    kit.observe("GET", "/api/posts", "/api/posts", 200, 0.9)
    for _ in range(5):
        kit.observe("POST", "/api/posts", "/api/posts", 201, 0.2)
    kit.observe("GET", "/stats", "/stats", 200, 3.0)  # a scrape is not a route of the service's API
    routes = {(r.method, r.route): r for r in route_latencies("blog-service", kit.metrics().decode())}
    assert set(routes) == {("GET", "/api/posts"), ("POST", "/api/posts")}
    listing = routes[("GET", "/api/posts")]
    assert (listing.requests, listing.p95_ms) == (20, 5.0)  # 19 of 20 fall in the 5 ms bucket
    assert listing.mean_ms == round((19 * 0.004 + 0.9) / 20 * 1000, 2)
    assert routes[("POST", "/api/posts")].p95_ms == 250.0
    assert [r.method for r in slowest(list(routes.values()), 1)] == ["POST"]
