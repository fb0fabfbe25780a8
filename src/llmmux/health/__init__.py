"""Provider health: states, probes and circuit breaking.

`HealthPolicy` is the pure state machine, `HealthMonitor` keeps every provider's record
and takes reports, `Prober` runs the active checks, `parse_health` reads `health_checks:`.
"""

from ..config.health_checks import HealthConfig, HealthSettings, parse_health
from .breaker import (
    ACTIVE,
    COOLDOWN,
    DEGRADED,
    UNAVAILABLE,
    Admission,
    HealthPolicy,
    HealthRecord,
    ProbeRecord,
    Transition,
)
from .monitor import HealthMonitor
from .probes import Prober, check
from .signals import ErrorWindow, LatencyStats, ewma

__all__ = [
    "ACTIVE",
    "COOLDOWN",
    "DEGRADED",
    "UNAVAILABLE",
    "Admission",
    "ErrorWindow",
    "HealthConfig",
    "HealthMonitor",
    "HealthPolicy",
    "HealthRecord",
    "HealthSettings",
    "LatencyStats",
    "ProbeRecord",
    "Prober",
    "Transition",
    "check",
    "ewma",
    "parse_health",
]
