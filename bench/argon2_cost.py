"""What one password check costs at each of OWASP's equivalent argon2id settings.

    python -m bench.argon2_cost [--checks 20]

OWASP's Password Storage Cheat Sheet lists five argon2id settings of equal strength
(parallelism 1): 46 MiB with t=1, 19 MiB with t=2 (the suite's default, services/auth/
config.py), 12 MiB with t=3, 9 MiB with t=4, 7 MiB with t=5. For each, through the
suite's own `services.auth.passwords.Passwords`: the median wall and CPU milliseconds of
one verification (what every login, and every login of an unknown address, pays), and so
how many logins one core can check per second. CPU time is this process's, so a busy
machine changes the wall figure more than the CPU one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from services.auth.config import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST
from services.auth.passwords import Passwords

# (memory KiB, time cost), OWASP's equivalent argon2id settings, strongest memory first.
OWASP_SETTINGS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))


def main(argv: list[str] | None = None) -> int:
    """Print one line per setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args(argv)
    for memory_kib, time_cost in OWASP_SETTINGS:
        passwords = Passwords(time_cost=time_cost, memory_kib=memory_kib, parallelism=1)
        stored = passwords.hash("correct horse battery")
        walls, cpus = [], []
        for _ in range(args.checks):
            wall, cpu = time.perf_counter(), time.process_time()
            assert passwords.verify(stored, "correct horse battery")
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        cpu_ms = statistics.median(cpus)
        default = (memory_kib, time_cost) == (OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST)
        sys.stdout.write(
            f"m={memory_kib:>5} KiB t={time_cost} p=1{' (default)' if default else '          '}"
            f"  verify: {statistics.median(walls):6.1f} ms wall, {cpu_ms:6.1f} ms CPU"
            f"  -> {1000 / cpu_ms:5.1f} checks per CPU-second\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
