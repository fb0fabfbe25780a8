"""The memory trimmer: it runs once after a burst, never per request, backs off when futile, and is safe off glibc.

The policy is pure and the clock moves by hand; the trimmer gets counting stand-ins for the
collection and `malloc_trim`, and an RSS that the test sets.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pytest

from llmmux.server.memory_trim import (
    MAX_INTERVAL_S,
    MIB,
    MIN_INTERVAL_S,
    QUIET_S,
    TICK_S,
    MemoryTrimmer,
    TrimPolicy,
    current_rss,
    glibc_malloc_trim,
)

IDLE = 45 * MIB
AFTER_BURST = 100 * MIB


@dataclass
class FakeProcess:
    """RSS the test sets; the collection and `malloc_trim` count their calls and give back what the test says."""

    rss: int = IDLE
    now: float = 0.0
    gives_back_to: int | None = IDLE
    collections: int = 0
    trims: list[float] = field(default_factory=list)

    def collect(self) -> int:
        self.collections += 1
        return 0

    def malloc_trim(self) -> int:
        self.trims.append(self.now)
        if self.gives_back_to is not None:
            self.rss = self.gives_back_to
        return 1

    def trimmer(self, with_malloc_trim: bool = True) -> MemoryTrimmer:
        return MemoryTrimmer(
            rss=lambda: self.rss,
            malloc_trim=self.malloc_trim if with_malloc_trim else None,
            collect=self.collect,
            clock=lambda: self.now,
        )


def run(process: FakeProcess, trimmer: MemoryTrimmer, seconds: int, requests_a_second: int, in_flight: int) -> None:
    """`seconds` ticks of the server's once-a-second timer under a load."""
    total = trimmer.policy.last_total or 0
    for _ in range(seconds):
        process.now += 1.0
        total += requests_a_second
        trimmer.tick(requests_total=total, in_flight=in_flight)


def test_a_burst_is_trimmed_once_when_it_is_over() -> None:
    process = FakeProcess()
    trimmer = process.trimmer()
    run(process, trimmer, 3, requests_a_second=0, in_flight=0)  # idle: the floor is learnt
    process.rss = AFTER_BURST
    run(process, trimmer, 20, requests_a_second=500, in_flight=5000)  # 10,000 streams, 10,000 requests
    assert process.trims == [] and process.collections == 0  # never while busy
    burst_ended = process.now
    run(process, trimmer, 60, requests_a_second=1, in_flight=0)  # a health probe a second
    assert process.trims == [burst_ended + TICK_S + QUIET_S]  # the first quiet tick, then QUIET_S more
    assert process.collections == 1  # the cycles first, then the heap
    assert process.rss == IDLE and trimmer.trims == 1


def test_steady_load_never_trims_however_many_requests() -> None:
    process = FakeProcess(rss=AFTER_BURST)
    trimmer = process.trimmer()
    run(process, trimmer, 600, requests_a_second=8000, in_flight=64)  # 4.8 million requests
    assert process.trims == [] and process.collections == 0


def test_growth_too_small_to_matter_is_left_alone() -> None:
    process = FakeProcess()
    trimmer = process.trimmer()
    run(process, trimmer, 2, requests_a_second=0, in_flight=0)
    process.rss = IDLE + 4 * MIB
    run(process, trimmer, 5, requests_a_second=3000, in_flight=64)
    run(process, trimmer, 60, requests_a_second=0, in_flight=0)
    assert process.trims == []


def test_a_futile_trim_waits_twice_as_long_each_time_and_a_new_burst_resets_the_wait() -> None:
    process = FakeProcess(gives_back_to=None)  # the growth is live data (a cache that filled): nothing comes back
    trimmer = process.trimmer()
    run(process, trimmer, 2, requests_a_second=0, in_flight=0)
    process.rss = AFTER_BURST
    run(process, trimmer, 2, requests_a_second=500, in_flight=500)
    start = process.now
    run(process, trimmer, 400, requests_a_second=0, in_flight=0)
    gaps = [b - a for a, b in zip(process.trims, process.trims[1:], strict=False)]
    assert process.trims[0] == start + TICK_S + QUIET_S
    assert gaps == [MIN_INTERVAL_S * 2**i for i in range(1, len(gaps) + 1)]
    assert gaps[-1] <= MAX_INTERVAL_S
    before = len(process.trims)
    run(process, trimmer, 2, requests_a_second=500, in_flight=500)  # another burst
    run(process, trimmer, 12, requests_a_second=0, in_flight=0)
    assert len(process.trims) == before + 1  # tried again once it was over, not after the long wait


def test_off_glibc_the_collection_still_runs_and_nothing_breaks() -> None:
    process = FakeProcess()
    trimmer = process.trimmer(with_malloc_trim=False)
    run(process, trimmer, 2, requests_a_second=0, in_flight=0)
    process.rss = AFTER_BURST
    run(process, trimmer, 2, requests_a_second=500, in_flight=500)
    run(process, trimmer, 5, requests_a_second=0, in_flight=0)
    assert process.collections == 1 and trimmer.trims == 1


def test_without_a_way_to_read_rss_nothing_is_trimmed_blind() -> None:
    collections: list[int] = []
    trimmer = MemoryTrimmer(rss=lambda: None, malloc_trim=None, collect=lambda: collections.append(1) or 0)
    for second in range(30):
        trimmer.tick(requests_total=second * 1000, in_flight=0)
    assert collections == [] and trimmer.trims == 0


def test_a_c_library_without_malloc_trim_is_no_glibc() -> None:
    class Musl:  # musl's libc: a malloc, but no malloc_trim and no gnu_get_libc_version
        def malloc(self, size: int) -> int:
            return 0

    assert glibc_malloc_trim(load=Musl) is None

    def missing() -> object:
        raise OSError("no C library to load")

    assert glibc_malloc_trim(load=missing) is None


@pytest.mark.skipif(sys.platform != "linux", reason="glibc and /proc are Linux's")
def test_on_this_linux_box_the_real_trim_runs_and_rss_is_read() -> None:
    rss = current_rss()
    assert rss is not None and rss > 10 * MIB
    trim = glibc_malloc_trim()
    if trim is None:
        pytest.skip("this Linux's C library is not glibc")
    assert trim() in (0, 1)  # 1: memory went back to the system, 0: there was none to give


def test_policy_is_quiet_only_after_the_whole_quiet_period() -> None:
    policy = TrimPolicy()
    assert not policy.due(0.0, IDLE, 0, 0)
    assert not policy.due(1.0, AFTER_BURST, 100, 4000)
    assert not policy.due(2.0, AFTER_BURST, 100, 0)  # quiet from here
    assert not policy.due(2.0 + QUIET_S - 0.5, AFTER_BURST, 100, 0)
    assert policy.due(2.0 + QUIET_S, AFTER_BURST, 100, 0)
