"""A key's rpm and tpm buckets, moved by hand: nothing sleeps."""

from __future__ import annotations

import pytest

from llmmux.limits.key_buckets import KeyLimits
from support.clock import FakeClock


def test_rpm_refuses_with_the_wait_then_refills() -> None:
    clock = FakeClock()
    limits = KeyLimits(rpm=60, tpm=None, clock=clock)  # one a second, 60 at most
    assert all(limits.admit() is None for _ in range(60))
    which, wait = limits.admit() or ("", 0.0)
    assert which == "requests per minute" and wait == pytest.approx(1.0)
    clock.advance(0.5)
    assert (limits.admit() or ("", 0.0))[1] == pytest.approx(0.5)
    clock.advance(3600)
    assert all(limits.admit() is None for _ in range(60))


def test_tokens_are_charged_after_the_reply_and_may_leave_debt() -> None:
    clock = FakeClock()
    limits = KeyLimits(rpm=None, tpm=600, clock=clock)  # 10 tokens a second
    assert limits.admit() is None
    limits.charge_tokens(900)  # 300 in debt
    which, wait = limits.admit() or ("", 0.0)
    assert which == "tokens per minute" and wait == pytest.approx(30.0, abs=0.01)
    clock.advance(wait)
    assert limits.admit() is None


def test_both_limits_and_tpm_first() -> None:
    clock = FakeClock()
    limits = KeyLimits(rpm=2, tpm=1000, clock=clock)
    assert limits.admit() is None and limits.admit() is None
    assert (limits.admit() or ("", 0.0))[0] == "requests per minute"
    clock.advance(60)
    limits.charge_tokens(1500)
    assert (limits.admit() or ("", 0.0))[0] == "tokens per minute"


def test_no_limits_never_refuse() -> None:
    limits = KeyLimits(None, None, FakeClock())
    assert all(limits.admit() is None for _ in range(1000))
    limits.charge_tokens(10**9)
    assert limits.admit() is None
