"""The health state machine, moved through time by hand: nothing sleeps."""

from __future__ import annotations

import pytest

from llmmux.health import (
    ACTIVE,
    COOLDOWN,
    DEGRADED,
    UNAVAILABLE,
    Admission,
    HealthPolicy,
    HealthRecord,
    HealthSettings,
    ProbeRecord,
)

SETTINGS = HealthSettings(
    cooldown_s=30,
    min_cooldown_s=30,
    failure_threshold=3,
    window_s=60,
    min_requests=4,
    degraded_error_rate=0.25,
    unhealthy_error_rate=0.6,
    degraded_latency_ms=1000,
    trial_timeout_s=10,
)


@pytest.fixture
def policy() -> HealthPolicy:
    return HealthPolicy(SETTINGS)


def fail(
    policy: HealthPolicy, record: HealthRecord, now: float, *, trial: bool = False, retry_after: float | None = None
):  # type: ignore[no-untyped-def]
    return policy.failed(record, now, error="boom", retry_after=retry_after, trial=trial)


def ok(policy: HealthPolicy, record: HealthRecord, now: float, *, trial: bool = False, ttft: float | None = None):  # type: ignore[no-untyped-def]
    return policy.succeeded(record, now, latency_ms=50.0, ttft_ms=ttft, trial=trial)


def probe(now: float, good: bool, latency: float = 20.0) -> ProbeRecord:
    return ProbeRecord(now, good, latency, None if good else 503, "" if good else "overloaded", 3)


def test_consecutive_failures_open_the_breaker_and_the_cooldown_holds(policy: HealthPolicy) -> None:
    record = HealthRecord()
    assert fail(policy, record, 0.0) is None
    assert fail(policy, record, 1.0) is None
    opened = fail(policy, record, 2.0)
    assert opened is not None and (opened.old, opened.new) == (ACTIVE, COOLDOWN)
    assert "3 failures in a row" in opened.reason
    # Nothing passes until the cooldown ends, however often it is asked.
    for t in (2.0, 10.0, 31.9):
        assert policy.admit(record, t) is Admission.REJECT
        assert not policy.routable(record, t)
    # A passing health check does not end a cooldown caused by failing requests.
    assert policy.probed(record, 20.0, probe(20.0, True)) is None
    assert record.state == COOLDOWN


def test_half_open_lets_exactly_one_trial_through(policy: HealthPolicy) -> None:
    record = HealthRecord()
    for t in range(3):
        fail(policy, record, float(t))
    assert policy.routable(record, 32.0)
    assert policy.admit(record, 32.0) is Admission.TRIAL
    assert not policy.routable(record, 32.0)
    assert policy.admit(record, 32.5) is Admission.REJECT  # the trial is still out
    recovered = ok(policy, record, 33.0, trial=True)
    assert recovered is not None and (recovered.old, recovered.new) == (COOLDOWN, ACTIVE)
    assert policy.admit(record, 33.0) is Admission.ADMIT
    assert record.consecutive_failures == 0


def test_a_failed_trial_restarts_the_cooldown(policy: HealthPolicy) -> None:
    record = HealthRecord()
    for t in range(3):
        fail(policy, record, float(t))
    assert policy.admit(record, 40.0) is Admission.TRIAL
    assert fail(policy, record, 41.0, trial=True) is None  # still cooling down: no transition
    assert record.retry_at == 71.0
    assert policy.admit(record, 70.0) is Admission.REJECT
    assert policy.admit(record, 71.0) is Admission.TRIAL


def test_a_trial_that_never_reports_frees_the_slot_after_its_timeout(policy: HealthPolicy) -> None:
    record = HealthRecord()
    for t in range(3):
        fail(policy, record, float(t))
    assert policy.admit(record, 32.0) is Admission.TRIAL
    assert policy.admit(record, 41.9) is Admission.REJECT
    assert policy.admit(record, 42.0) is Admission.TRIAL
    HealthPolicy.released(record)
    assert policy.admit(record, 42.1) is Admission.TRIAL


def test_rate_limited_cools_down_for_its_retry_after_only(policy: HealthPolicy) -> None:
    record = HealthRecord()
    transition = fail(policy, record, 5.0, retry_after=2.0)
    assert transition is not None and transition.new == COOLDOWN and "rate limited for 2 s" in transition.reason
    assert policy.admit(record, 6.9) is Admission.REJECT
    assert policy.admit(record, 7.0) is Admission.TRIAL


def test_error_rate_degrades_then_opens_and_recovers(policy: HealthPolicy) -> None:
    record = HealthRecord()
    for t in range(3):
        ok(policy, record, float(t))
    degraded = fail(policy, record, 3.0)  # 1 of 4 = 25%
    assert degraded is not None and degraded.new == DEGRADED and "25%" in degraded.reason
    assert policy.admit(record, 3.0) is Admission.ADMIT  # degraded is still routable
    ok(policy, record, 4.0)
    fail(policy, record, 5.0)
    opened = fail(policy, record, 6.0)  # 3 of 7 is under 60%, but 2 in a row is not 3: still degraded
    assert opened is None and record.state == DEGRADED
    for t in (7.0, 8.0):
        ok(policy, record, t)
        fail(policy, record, t + 0.5)
    assert record.state == DEGRADED
    # Errors fall out of the window as time passes.
    back = ok(policy, record, 200.0)
    assert back is not None and (back.old, back.new) == (DEGRADED, ACTIVE)


def test_error_rate_over_the_unhealthy_threshold_opens_the_breaker() -> None:
    policy = HealthPolicy(
        HealthSettings(
            failure_threshold=100, min_requests=5, unhealthy_error_rate=0.5, degraded_error_rate=0.9, cooldown_s=10
        )
    )
    record = HealthRecord()
    outcomes = [True, False, True, False, False]
    transitions = [
        policy.succeeded(record, float(i), latency_ms=1, ttft_ms=None, trial=False)
        if good
        else policy.failed(record, float(i), error="e", retry_after=None, trial=False)
        for i, good in enumerate(outcomes)
    ]
    assert transitions[-1] is not None and transitions[-1].new == COOLDOWN
    assert "60% of requests failed" in transitions[-1].reason


def test_slow_first_tokens_degrade(policy: HealthPolicy) -> None:
    record = HealthRecord()
    assert ok(policy, record, 0.0, ttft=400) is None
    slow = ok(policy, record, 1.0, ttft=5000)  # EWMA 400 + 0.2 * 4600 = 1320 ms
    assert slow is not None and slow.new == DEGRADED and "time to first token 1320 ms" in slow.reason
    for t in range(2, 12):
        ok(policy, record, float(t), ttft=100)
    assert record.state == ACTIVE


def test_failed_health_checks_make_unavailable_and_a_passing_one_restores(policy: HealthPolicy) -> None:
    record = HealthRecord()
    down = policy.probed(record, 0.0, probe(0.0, False))
    assert down is not None and down.new == UNAVAILABLE
    assert "health check failed 3 time(s): 503 overloaded" in down.reason
    assert policy.admit(record, 1.0) is Admission.REJECT
    assert policy.probed(record, 60.0, probe(60.0, False)) is None
    assert record.retry_at == 90.0
    up = policy.probed(record, 120.0, probe(120.0, True))
    assert up is not None and (up.old, up.new) == (UNAVAILABLE, ACTIVE)
    assert record.last_probe is not None and record.last_probe.ok


def test_slow_health_checks_degrade(policy: HealthPolicy) -> None:
    record = HealthRecord()
    transition = policy.probed(record, 0.0, probe(0.0, True, latency=2500))
    assert transition is not None and transition.new == DEGRADED and "health check latency" in transition.reason


def test_failures_while_out_change_nothing(policy: HealthPolicy) -> None:
    record = HealthRecord()
    for t in range(3):
        fail(policy, record, float(t))
    retry_at = record.retry_at
    assert fail(policy, record, 5.0) is None  # a request that was already in flight
    assert record.retry_at == retry_at
    assert ok(policy, record, 6.0) is None  # a straggler's success is not the trial
    assert record.state == COOLDOWN


def test_each_failed_trial_doubles_the_cooldown_up_to_the_maximum() -> None:
    policy = HealthPolicy(HealthSettings(min_cooldown_s=10, cooldown_s=35, failure_threshold=1))
    record = HealthRecord()
    now, lengths = 0.0, []
    fail(policy, record, now)
    for _ in range(4):
        lengths.append(record.retry_at - now)
        now = record.retry_at
        assert policy.admit(record, now) is Admission.TRIAL
        fail(policy, record, now, trial=True)
    assert lengths == [10, 20, 35, 35]
    now = record.retry_at
    policy.admit(record, now)
    ok(policy, record, now, trial=True)
    fail(policy, record, now + 1)  # a fresh outage starts short again
    assert record.retry_at - (now + 1) == 10


def test_with_passive_off_only_health_checks_change_the_state() -> None:
    policy = HealthPolicy(HealthSettings(passive=False, failure_threshold=1, degraded_latency_ms=1))
    record = HealthRecord()
    for t in range(5):
        assert fail(policy, record, float(t)) is None
        assert ok(policy, record, float(t), ttft=5000) is None
    assert record.state == ACTIVE and record.last_error == "boom"
    assert policy.probed(record, 9.0, probe(9.0, False)) is not None and record.state == UNAVAILABLE
