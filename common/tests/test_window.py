from titanium_common.window import LatencyReservoir, SlidingWindow


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_event_stays_for_the_window_then_leaves():
    clock = FakeClock()
    window = SlidingWindow(window_s=10.0, resolution_s=0.1, clock=clock)
    window.add(5.0)
    clock.now += 9.85
    assert window.count() == 1
    clock.now += 0.2
    assert window.count() == 0


def test_window_slides_instead_of_resetting():
    clock = FakeClock()
    window = SlidingWindow(window_s=10.0, resolution_s=0.1, clock=clock)
    for _ in range(20):
        window.add(2.0)
        clock.now += 1.0
    clock.now -= 0.5
    assert window.count() == 10
    assert window.rate() == 1.0
    assert window.mean() == 2.0


def test_memory_does_not_grow_with_traffic():
    clock = FakeClock()
    window = SlidingWindow(window_s=10.0, resolution_s=0.5, clock=clock)
    for i in range(100_000):
        clock.now = 1000.0 + i * 0.001
        window.add()
    assert len(window._counts) == 20
    assert window.count() == 10_000


def test_percentiles_follow_the_latest_values():
    reservoir = LatencyReservoir(size=100)
    for value in range(1, 101):
        reservoir.add(float(value))
    assert reservoir.percentiles() == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    for _ in range(100):
        reservoir.add(1.0)
    assert reservoir.percentiles()["p99"] == 1.0


def test_percentiles_of_nothing_are_zero():
    assert LatencyReservoir().percentiles() == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
