"""PoolPolicy: which models stay loaded, with time moved by hand."""

from __future__ import annotations

from llmmux.config.units import FOREVER
from llmmux.local.pool_policy import Limits, Load, PoolPolicy, Refuse, State, Wait
from local.fixtures import FakeClock

MB = 1024 * 1024


def policy(clock: FakeClock, max_loaded: int = 2, max_memory: int | None = None) -> PoolPolicy:
    return PoolPolicy(Limits(max_loaded_models=max_loaded, max_memory=max_memory), clock)


def resident(p: PoolPolicy, name: str, memory: int = MB, keep_alive: float = 300.0, busy: int = 0) -> None:
    p.reserve(name, memory, keep_alive)
    p.loaded(name)
    for _ in range(busy):
        p.start(name)


def test_room_left_means_load_without_evicting(clock: FakeClock) -> None:
    p = policy(clock)
    resident(p, "a")
    assert p.admit("b", MB) == Load([])


def test_the_least_recently_used_idle_model_is_evicted(clock: FakeClock) -> None:
    p = policy(clock)
    resident(p, "a")
    clock.advance(1)
    resident(p, "b")
    clock.advance(1)
    p.start("a")  # a is used again: b is now the least recently used
    p.finish("a")
    assert p.admit("c", MB) == Load(["b"])


def test_a_model_with_requests_in_flight_is_drained_never_evicted(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=1)
    resident(p, "a", busy=1)
    assert p.admit("b", MB) == Wait(["a"])
    p.drain(["a"])
    assert p.residents["a"].draining
    p.finish("a")
    assert p.admit("b", MB) == Load(["a"])


def test_idle_models_are_evicted_before_waiting_for_busy_ones(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=2)
    resident(p, "busy", busy=1)
    clock.advance(1)
    resident(p, "idle")
    assert p.admit("new", MB) == Load(["idle"])


def test_memory_budget_evicts_as_many_lru_models_as_needed(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=10, max_memory=10 * MB)
    for name in ("a", "b", "c"):
        resident(p, name, memory=3 * MB)
        clock.advance(1)
    assert p.admit("small", MB) == Load([])
    assert p.admit("big", 6 * MB) == Load(["a", "b"])


def test_a_model_bigger_than_the_budget_is_refused_for_good(clock: FakeClock) -> None:
    p = policy(clock, max_memory=4 * MB)
    decision = p.admit("huge", 5 * MB)
    assert isinstance(decision, Refuse) and decision.permanent
    assert "max_memory" in decision.reason


def test_pinned_models_are_never_evicted(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=2)
    resident(p, "pinned", keep_alive=FOREVER)
    clock.advance(1)
    resident(p, "other")
    assert p.admit("new", MB) == Load(["other"])


def test_a_pool_full_of_pinned_models_refuses_without_waiting(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=1)
    resident(p, "pinned", keep_alive=FOREVER, busy=1)
    decision = p.admit("new", MB)
    assert isinstance(decision, Refuse) and not decision.permanent
    assert "pinned" in decision.reason


def test_a_model_still_loading_is_not_drained(clock: FakeClock) -> None:
    p = policy(clock, max_loaded=1)
    p.reserve("loading", MB, 300.0)
    assert p.admit("new", MB) == Wait([])


def test_keep_alive_expires_idle_models_only_after_their_last_request(clock: FakeClock) -> None:
    p = policy(clock)
    resident(p, "a", keep_alive=60)
    p.start("a")
    clock.advance(120)
    assert p.expired() == []  # in flight: no expiry at all
    p.finish("a")
    assert p.next_expiry() == clock.now + 60
    clock.advance(59.9)
    assert p.expired() == []
    clock.advance(0.1)
    assert p.expired() == ["a"]


def test_keep_alive_zero_expires_at_once_and_forever_never(clock: FakeClock) -> None:
    p = policy(clock)
    resident(p, "now", keep_alive=0)
    resident(p, "never", keep_alive=FOREVER)
    clock.advance(10**9)
    assert p.expired() == ["now"]
    assert p.next_expiry() is not None and p.residents["never"].expires_at is None


def test_a_requests_keep_alive_replaces_the_models(clock: FakeClock) -> None:
    p = policy(clock)
    resident(p, "a", keep_alive=300)
    p.start("a")
    p.finish("a", keep_alive=FOREVER)  # Ollama: keep_alive -1 on a request pins the model
    assert p.residents["a"].pinned and p.residents["a"].expires_at is None
    p.start("a")
    p.finish("a", keep_alive=5)
    assert p.residents["a"].expires_at == clock.now + 5


def test_states_and_counts_follow_the_lifecycle(clock: FakeClock) -> None:
    p = policy(clock)
    r = p.reserve("a", MB, 300.0)
    assert r.state is State.LOADING and not r.idle
    p.loaded("a")
    assert r.state is State.READY and r.idle and r.loaded_at == clock.now
    p.unloading("a")
    assert r.state is State.UNLOADING and p.expired() == []
    p.remove("a")
    assert p.residents == {}
