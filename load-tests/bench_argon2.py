"""Argon2id cost of one password check with user-service's parameters (and a few others, for choosing them).
Numbers to read, never asserted.

Each check's CPU time (time.process_time, all threads: what other load on the machine barely moves) and wall time
are taken over several rounds; the median is shown. user-service's defaults aim at about 50 ms of CPU per check
on the 2-core development machine (measured 40-52 ms; Argon2's library defaults, 3 passes over 64 MiB on 4 lanes,
took about 220 ms of CPU there).

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_argon2.py [--rounds 15]`.
"""

import argparse
import statistics
import time

from argon2 import PasswordHasher

from user_service.settings import UserSettings


def measure(time_cost: int, memory_kib: int, parallelism: int, rounds: int) -> tuple[float, float]:
    """Median (CPU ms, wall ms) of one verify."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    stored = hasher.hash("a password of ordinary length")
    cpu, wall = [], []
    for _ in range(rounds):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        hasher.verify(stored, "a password of ordinary length")
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started_wall) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    defaults = UserSettings()
    chosen = (defaults.argon2_time_cost, defaults.argon2_memory_kib, defaults.argon2_parallelism)
    candidates = [chosen, (3, 65536, 4), (2, 19456, 1), (2, 32768, 1)]
    print(f"{'time_cost':>9} {'memory_kib':>10} {'parallelism':>11} {'cpu_ms':>8} {'wall_ms':>8}")
    for time_cost, memory_kib, parallelism in candidates:
        cpu_ms, wall_ms = measure(time_cost, memory_kib, parallelism, args.rounds)
        mark = "  <- user-service default" if (time_cost, memory_kib, parallelism) == chosen else ""
        print(f"{time_cost:>9} {memory_kib:>10} {parallelism:>11} {cpu_ms:>8.1f} {wall_ms:>8.1f}{mark}")


if __name__ == "__main__":
    main()
