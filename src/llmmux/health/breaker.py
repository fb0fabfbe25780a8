"""The health state machine of one provider: a circuit breaker fed by probes and by traffic.

    active ──(slow, or errors above the degraded rate)──► degraded ──(recovers)──► active
      │                                                      │
      ├──(N consecutive failures, error rate, 429 + Retry-After)──► cooldown
      └──(a health check fails every attempt)─────────────────────► unavailable

    any ──(an operator takes it out of rotation)──► drained ──(put back)──► active

    cooldown / unavailable ──(retry time reached)──► half-open: ONE trial request
        trial succeeds ──► active        trial fails ──► cooldown again, twice as long

A cooldown after failures starts at `min_cooldown_s` and doubles with each failed trial, up
to `cooldown_s` (the seeds' 300 s): a blip costs seconds, a dead provider is left alone.
    unavailable ──(a probe succeeds)──► active

A cooldown holds: only the trial request passes before it ends, and a passing probe does
not end it (the health endpoint answering says little about chat requests failing). The
policy is pure: it changes a `HealthRecord` given the time, and returns the transition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from ..config.health_checks import HealthSettings
from .signals import ErrorWindow, ewma

ACTIVE = "active"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"
COOLDOWN = "cooldown"
DRAINED = "drained"  # out of rotation by an operator's choice: neither traffic nor probes bring it back
DRAINED_FOR_S = 10 * 365 * 86400.0  # a finite "never", so every state store can encode it
ROUTABLE = frozenset({ACTIVE, DEGRADED})


class ProbeRecord(msgspec.Struct):
    at: float
    ok: bool
    latency_ms: float
    status: int | None = None
    detail: str = ""
    attempts: int = 1


class HealthRecord(msgspec.Struct):
    """Everything known about one provider's health; kept in the `State` store."""

    state: str = ACTIVE
    since: float = 0.0
    reason: str = ""
    retry_at: float = 0.0
    trial: bool = False
    trial_started: float = 0.0
    consecutive_failures: int = 0
    cooldowns: int = 0  # breaker openings since the provider was last active
    window: ErrorWindow = msgspec.field(default_factory=ErrorWindow)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    probe_latency_ms: float | None = None
    last_probe: ProbeRecord | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    old: str
    new: str
    reason: str


class Admission(enum.Enum):
    """Whether a request may go to a provider now."""

    ADMIT = "admit"
    TRIAL = "trial"  # the one half-open request after a cooldown
    REJECT = "reject"


class HealthPolicy:
    """Applies one provider's `HealthSettings` to its record; no I/O, time passed in."""

    __slots__ = ("settings",)

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings

    # -- routing --

    @staticmethod
    def routable(record: HealthRecord, now: float) -> bool:
        """Would a request be let through now (without taking the trial)?"""
        if record.state in ROUTABLE:
            return True
        return now >= record.retry_at and not record.trial

    def admit(self, record: HealthRecord, now: float) -> Admission:
        if record.state in ROUTABLE:
            return Admission.ADMIT
        if now < record.retry_at:
            return Admission.REJECT
        if record.trial and now - record.trial_started < self.settings.trial_timeout_s:
            return Admission.REJECT
        record.trial, record.trial_started = True, now
        return Admission.TRIAL

    # -- traffic --

    def succeeded(
        self, record: HealthRecord, now: float, *, latency_ms: float | None, ttft_ms: float | None, trial: bool
    ) -> Transition | None:
        s = self.settings
        record.window.add(now=now, ok=True, span=s.window_s)
        record.consecutive_failures = 0
        if latency_ms is not None:
            record.latency_ms = ewma(record.latency_ms, latency_ms)
        if ttft_ms is not None:
            record.ttft_ms = ewma(record.ttft_ms, ttft_ms)
        if trial and record.state != DRAINED:  # a trial sent before the drain does not undo it
            record.trial = False
            if record.state not in ROUTABLE:
                return self._move(record, now, ACTIVE, "a trial request succeeded")
        if not s.passive or (record.state == ACTIVE and not self._slow(record)):
            return None  # the common case: a success cannot raise the error rate
        return self._settle(record, now)

    def _slow(self, record: HealthRecord) -> bool:
        limit = self.settings.degraded_latency_ms
        return limit is not None and (record.ttft_ms or 0.0) >= limit

    def failed(
        self, record: HealthRecord, now: float, *, error: str, retry_after: float | None, trial: bool
    ) -> Transition | None:
        s = self.settings
        record.window.add(now=now, ok=False, span=s.window_s)
        record.consecutive_failures += 1
        record.last_error = error
        if trial and record.state != DRAINED:
            record.trial = False
            return self._trip(record, now, f"the trial request failed: {error}")
        if record.state not in ROUTABLE or not s.passive:
            return None  # already out (a straggler's failure changes nothing), or only probes judge
        if retry_after is not None:
            return self._cool(record, now, retry_after, f"rate limited for {retry_after:g} s: {error}")
        if record.consecutive_failures >= s.failure_threshold:
            return self._trip(record, now, f"{record.consecutive_failures} failures in a row: {error}")
        rate = record.window.rate(now=now, span=s.window_s, min_requests=s.min_requests)
        if rate is not None and rate >= s.unhealthy_error_rate:
            return self._trip(record, now, f"{rate:.0%} of requests failed in {s.window_s:g} s")
        return self._settle(record, now)

    @staticmethod
    def released(record: HealthRecord) -> None:
        """A trial ended without a verdict (cancelled, or the client's own error)."""
        record.trial = False

    # -- probes --

    def probed(self, record: HealthRecord, now: float, probe: ProbeRecord) -> Transition | None:
        record.last_probe = probe
        if record.state == DRAINED:
            return None
        if probe.ok:
            record.probe_latency_ms = ewma(record.probe_latency_ms, probe.latency_ms)
            if record.state == UNAVAILABLE:
                return self._move(record, now, ACTIVE, "a health check passed")
            return self._settle(record, now)
        if record.state == UNAVAILABLE:
            record.retry_at = now + self.settings.cooldown_s
            return None
        detail = f"{probe.status} {probe.detail}".strip() if probe.status else probe.detail
        reason = f"health check failed {probe.attempts} time(s): {detail or 'no answer'}"
        transition = self._move(record, now, UNAVAILABLE, reason)
        record.retry_at = now + self.settings.cooldown_s
        return transition

    # -- operators --

    def drain(self, record: HealthRecord, now: float, reason: str) -> Transition | None:
        if record.state == DRAINED:
            return None
        record.retry_at, record.trial = now + DRAINED_FOR_S, False
        return self._move(record, now, DRAINED, reason)

    def restore(self, record: HealthRecord, now: float) -> Transition | None:
        if record.state != DRAINED:
            return None
        record.retry_at, record.cooldowns, record.consecutive_failures = 0.0, 0, 0
        return self._move(record, now, ACTIVE, "put back into rotation by an operator")

    # -- helpers --

    def _trip(self, record: HealthRecord, now: float, reason: str) -> Transition | None:
        """Open the breaker: the first cooldown is short, each failed trial doubles it, up to the maximum."""
        s = self.settings
        record.cooldowns += 1
        seconds = min(s.cooldown_s, s.min_cooldown_s * 2 ** (record.cooldowns - 1))
        return self._cool(record, now, seconds, reason)

    def _cool(self, record: HealthRecord, now: float, seconds: float, reason: str) -> Transition | None:
        record.retry_at = now + seconds
        if record.state == COOLDOWN:
            record.reason = reason
            return None
        return self._move(record, now, COOLDOWN, reason)

    def _settle(self, record: HealthRecord, now: float) -> Transition | None:
        """Between active and degraded, by error rate and latency."""
        if record.state not in ROUTABLE:
            return None
        reason = self._degraded_reason(record, now)
        if reason is not None:
            if record.state == DEGRADED:
                record.reason = reason
                return None
            return self._move(record, now, DEGRADED, reason)
        if record.state == DEGRADED:
            return self._move(record, now, ACTIVE, "error rate and latency are back to normal")
        return None

    def _degraded_reason(self, record: HealthRecord, now: float) -> str | None:
        s = self.settings
        rate = record.window.rate(now=now, span=s.window_s, min_requests=s.min_requests)
        if rate is not None and rate >= s.degraded_error_rate:
            return f"{rate:.0%} of requests failed in {s.window_s:g} s"
        limit = s.degraded_latency_ms
        if limit is not None:
            for name, value in (
                ("time to first token", record.ttft_ms),
                ("health check latency", record.probe_latency_ms),
            ):
                if value is not None and value >= limit:
                    return f"{name} {value:.0f} ms is over {limit:g} ms"
        return None

    @staticmethod
    def _move(record: HealthRecord, now: float, new: str, reason: str) -> Transition:
        transition = Transition(record.state, new, reason)
        record.state, record.since, record.reason = new, now, reason
        if new in ROUTABLE:
            record.retry_at = 0.0
            if transition.old not in ROUTABLE:
                # Back from an outage: judge it afresh, not by the failures that caused it.
                record.consecutive_failures = record.cooldowns = 0
                record.window = ErrorWindow()
        return transition
