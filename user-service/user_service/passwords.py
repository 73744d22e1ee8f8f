"""Argon2id password hashing on a few worker threads, with admission control.

A check costs tens of milliseconds of CPU on purpose, so checks queue behind each other under load. A check that
would finish after its caller's budget is refused at once (503 with Retry-After), rather than run for a caller that
has given up: the queue stays short. The estimate can be wrong (the machine got busier), so a check whose turn
comes after its budget has run out is not run either, and is answered the same way: never late.
"""

import asyncio
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException

# The first estimate of one check, before any was timed.
FIRST_ESTIMATE_S = 0.05
# Weight of the newest timing in the running estimate.
SMOOTHING = 0.2
# What a worker answers for a check whose turn came too late to finish within its budget.
_TOO_LATE = object()


class PasswordsBusy(HTTPException):
    def __init__(self, retry_after_s: float) -> None:
        wait = max(1, math.ceil(retry_after_s))
        super().__init__(503, "password checks are busy; retry shortly", headers={"Retry-After": str(wait)})


class Passwords:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int = 0) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Checked for unknown usernames so that a miss costs as much as a wrong password (no user enumeration).
        self._dummy_hash = self.hasher.hash("titanium-dummy-password")
        # One thread per core: more would only make every check slower, not more of them finish.
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self.in_queue = 0
        self.estimate_s = FIRST_ESTIMATE_S
        self.refused = 0

    def expected_wait_s(self) -> float:
        """When a check handed in now would be done: the queue ahead of it spread over the workers, plus itself."""
        return (self.in_queue // self.workers + 1) * self.estimate_s

    async def _run(self, budget_s: float, work, *args):
        expected = self.expected_wait_s()
        if expected > budget_s:
            self.refused += 1
            raise PasswordsBusy(expected - budget_s)
        self.in_queue += 1
        deadline = time.monotonic() + budget_s
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._timed, deadline, work, *args
            )
        finally:
            self.in_queue -= 1
        if outcome is _TOO_LATE:
            self.refused += 1
            raise PasswordsBusy(self.expected_wait_s())
        return outcome

    def _timed(self, deadline: float, work, *args):
        # The worker thread: the check's turn has come.
        started = time.monotonic()
        if started + self.estimate_s > deadline:
            return _TOO_LATE
        try:
            return work(*args)
        finally:
            self.estimate_s += SMOOTHING * (time.monotonic() - started - self.estimate_s)

    async def hash(self, password: str, *, budget_s: float) -> str:
        return await self._run(budget_s, self.hasher.hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str | None, password: str, *, budget_s: float) -> bool:
        """True if `password` matches; `None` (no such user) checks the dummy hash and is always False."""
        return await self._run(budget_s, self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def figures(self) -> dict:
        return {
            "passwords": {
                "workers": self.workers,
                "in_queue": self.in_queue,
                "check_ms": round(self.estimate_s * 1000, 1),
                "refused_busy": self.refused,
            }
        }

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
