"""The /stats single flight: concurrent and recent callers share one fan-out, and every caller learns the trace of
the request that ran it."""

import asyncio

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from titanium_common.fanout import SharedFanout


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def traced(trace_id: int):
    """A context whose current span is one of that trace (as during a traced request)."""
    context = SpanContext(trace_id, 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(context))


async def get_in_trace(fanout: SharedFanout, trace_id: int):
    token = otel_context.attach(traced(trace_id))
    try:
        return await fanout.get()
    finally:
        otel_context.detach(token)


async def test_callers_sharing_a_fan_out_learn_the_trace_of_the_one_that_ran_it():
    release = asyncio.Event()
    runs = 0

    async def fetch():
        nonlocal runs
        runs += 1
        await release.wait()
        return {"run": runs}

    clock = FakeClock()
    fanout = SharedFanout(fetch, ttl_s=1.0, clock=clock)
    leader = asyncio.create_task(get_in_trace(fanout, 0xA))
    await asyncio.sleep(0)
    joiner = asyncio.create_task(get_in_trace(fanout, 0xB))
    await asyncio.sleep(0)
    release.set()
    first, second = await leader, await joiner
    assert first.answer == second.answer == {"run": 1}
    assert first.trace_id == second.trace_id == f"{0xA:032x}"

    clock.now += 0.5  # within the TTL: the same answer, its age, the leader's trace
    cached = await get_in_trace(fanout, 0xC)
    assert (cached.answer, cached.age_s, cached.trace_id) == ({"run": 1}, 0.5, f"{0xA:032x}")

    clock.now += 1.0  # past it: this caller runs the next fan-out in its own trace
    fresh = await get_in_trace(fanout, 0xC)
    assert (fresh.answer, fresh.trace_id, fanout.fanouts) == ({"run": 2}, f"{0xC:032x}", 2)


async def test_an_untraced_fan_out_names_no_trace():
    async def fetch():
        return {}

    assert (await SharedFanout(fetch, ttl_s=1.0).get()).trace_id is None
