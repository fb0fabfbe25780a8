"""Sinks: each subscribes on its own, each takes a reloaded config, and a new one is one module."""

from __future__ import annotations

from typing import Any

from llmmux.accounting import Accounting
from llmmux.config import config_from_dict
from llmmux.events import HealthChange, RequestRecord
from llmmux.router import Router
from llmmux.sinks import Sink, Wiring
from llmmux.sinks.metrics import MetricsSink
from llmmux.sinks.request_log import RequestLogSink

SECRET = "zebra-secret-added-by-reload-42"  # no credential shape: only the config can say it is secret


def config(**sections: Any) -> dict[str, Any]:
    return {
        "providers": {"a": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
        **sections,
    }


def test_a_reload_reconfigures_every_sink() -> None:
    router = Router.from_config(config(logging={"requests": False}))
    accounting = Accounting(router)
    log = accounting.sink(RequestLogSink)
    assert log is not None and not log.log.enabled
    reloaded, _ = config_from_dict(config(logging={"requests": True, "bodies": ["m"]}))
    router.reload(reloaded)
    assert log.log.enabled and log.log.wants_body("m")


def test_a_provider_key_added_by_a_reload_is_masked() -> None:
    router = Router.from_config(config())
    assert SECRET in router.masker.scrub(f"upstream said {SECRET}")
    with_key = config()
    with_key["providers"]["b"] = {
        "type": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": SECRET,
        "models": ["n"],
    }
    reloaded, _ = config_from_dict(with_key)
    router.reload(reloaded)
    assert SECRET not in router.masker.scrub(f"upstream said {SECRET}")


def test_a_health_transition_sets_the_provider_state_gauge() -> None:
    router = Router.from_config(config())
    accounting = Accounting(router)
    assert accounting.sink(MetricsSink) is not None
    router.health.take_out("a")  # a real transition, through the monitor: published as health_changed
    state = accounting.metrics.provider_state.values
    assert state[("a", "active")] == 0.0 and max(v for (p, _), v in state.items() if p == "a") == 1.0


class Counting(Sink):
    """A sink written by a user: one class, subscribed through the same wiring."""

    def __init__(self) -> None:
        self.finished: list[RequestRecord] = []
        self.changes: list[HealthChange] = []

    def attach(self, wiring: Wiring) -> list[Any]:
        return [wiring.events.subscribe(self.finished.append), wiring.events.on_health(self.changes.append)]


def test_a_sink_hears_health_changes_without_touching_anything_else() -> None:
    router = Router.from_config(config())
    accounting = Accounting(router)
    sink = Counting()
    accounting.sinks.append(sink)
    sink.attach(accounting.wiring)
    router.health.take_out("a")
    assert [(c.provider, c.old) for c in sink.changes] == [("a", "active")]
