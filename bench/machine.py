"""What two basic operations cost on this machine, measured at the start of a benchmark run, so
that the tables can be read against it (virtual machines differ from bare metal most in these):

- waking a process that sleeps on another core and being woken back by it, against the same
  exchange between two processes on one core: a one-byte ping-pong over two pipes. A request
  through our proxy to a custom algorithm makes two such wake-ups beyond the direct call, and a
  server waiting for its client pays them on every exchange when a core goes idle;
- using a page of memory for the first time (a new anonymous mapping, one write per 4 KiB):
  what every page that the page cache or a heap grows into costs.

Usage: machine.py > machine-costs.json. Python's own cost per round trip (a few µs) is in both
ping-pong figures alike.
"""

import json
import mmap
import os
import time

ROUND_TRIPS = 20_000
WARM_UP = 1_000
MAPPING = 256 << 20
PAGE = mmap.PAGESIZE


def ping_pong(here: int, there: int) -> float:
    """µs per round trip between this process on core `here` and a child on core `there`."""
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {there})
        for _ in range(WARM_UP + ROUND_TRIPS):
            os.read(to_child, 1)
            os.write(from_child, b"x")
        os._exit(0)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {here})
    try:
        for _ in range(WARM_UP):
            os.write(from_parent, b"x")
            os.read(to_parent, 1)
        start = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            os.write(from_parent, b"x")
            os.read(to_parent, 1)
        elapsed = time.perf_counter() - start
    finally:
        os.waitpid(pid, 0)
        os.sched_setaffinity(0, before)
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
    return 1e6 * elapsed / ROUND_TRIPS


def new_page() -> float:
    """µs per page written for the first time in a new anonymous mapping, less the same loop's
    cost over pages already in use."""
    mapping = mmap.mmap(-1, MAPPING)
    offsets = range(0, MAPPING, PAGE)
    start = time.perf_counter()
    for offset in offsets:
        mapping[offset] = 1
    first = time.perf_counter() - start
    start = time.perf_counter()
    for offset in offsets:
        mapping[offset] = 2
    again = time.perf_counter() - start
    mapping.close()
    return 1e6 * (first - again) / len(offsets)


def main() -> None:
    cores = sorted(os.sched_getaffinity(0))
    result = {"new_page_us": round(new_page(), 2)}
    result["same_core_round_trip_us"] = round(ping_pong(cores[0], cores[0]), 1)
    if len(cores) >= 2:
        result["cross_core_round_trip_us"] = round(ping_pong(cores[0], cores[1]), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
