"""The one way tests wait: the value once the condition holds, else a failure that says what was awaited."""

import itertools

import pytest

from tests.support.polling import eventually, eventually_blocking


async def test_the_value_once_it_holds():
    counter = itertools.count()
    assert await eventually(lambda: next(counter), every_s=0) == 1
    assert await eventually(lambda: next(counter), until=lambda n: n >= 5, every_s=0) == 5


async def test_awaits_an_awaitable_check():
    async def ready() -> str:
        return "ready"

    assert await eventually(ready) == "ready"


async def test_a_wait_that_runs_out_fails_naming_what_and_the_last_value():
    with pytest.raises(TimeoutError, match=r"the answer: not within 0.2 s; last seen: \[1, 2\]"):
        await eventually(lambda: [1, 2], 0.2, until=lambda seen: seen == [1, 2, 3], what="the answer")


def test_blocking_variant():
    counter = itertools.count()
    assert eventually_blocking(lambda: next(counter), until=lambda n: n >= 3, every_s=0) == 3
    with pytest.raises(TimeoutError, match=r"the exit: not within 0\.1 s; last seen: False"):
        eventually_blocking(lambda: False, 0.1, what="the exit")
