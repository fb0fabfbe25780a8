"""The key ring: identity, model lists, budgets within one request, rate limits, periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmmux.errors import AuthenticationFailed, PermissionDenied, RateLimited
from llmmux.keys import (
    KEY_PREFIX,
    BudgetExceeded,
    KeyRing,
    apply_changes,
    hash_secret,
    make_key,
    parse_models,
)
from support.clock import FakeClock

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC).timestamp()


def ring(clock: FakeClock) -> KeyRing:
    return KeyRing(clock=clock, monotonic=clock)


def test_a_secret_is_long_random_and_only_its_hash_is_kept() -> None:
    key, secret = make_key("ci", now=NOW)
    other, other_secret = make_key("ci", now=NOW)
    assert secret.startswith(KEY_PREFIX) and len(secret) >= len(KEY_PREFIX) + 43
    assert secret != other_secret and key.id != other.id
    assert key.hash == hash_secret(secret) and secret not in repr(key)
    assert key.hint == KEY_PREFIX + "..." + secret[-4:]
    assert "hash" not in key.public(NOW) and secret not in str(key.public(NOW))


def test_find_by_secret_and_identity_checks() -> None:
    clock = FakeClock(NOW)
    keys = ring(clock)
    key, secret = make_key("ci", now=NOW, expires_at=NOW + 60)
    keys.load([key], {})
    assert keys.find(secret.encode()) is key
    assert keys.find(b"sk-llmmux-wrong") is None
    keys.check_identity(key)
    clock.advance(61)
    with pytest.raises(AuthenticationFailed, match="'ci' expired at"):
        keys.check_identity(key)
    key.revoked_at = NOW
    with pytest.raises(AuthenticationFailed, match="'ci' has been revoked"):
        keys.check_identity(key)


def test_model_lists_take_names_and_globs() -> None:
    keys = ring(FakeClock(NOW))
    key, _ = make_key("ci", now=NOW, models="gpt-4o, llama*")
    keys.load([key], {})
    assert keys.admit(key.id) is key
    assert key.allows("gpt-4o") and key.allows("llama3.1:8b") and not key.allows("gpt-4o-mini")
    assert key.allows_any(["openai/gpt-4o-mini", "gpt-4o"]) and not key.allows_any(["openai/gpt-4o-mini"])
    refusal = key.refusal("gpt-4o-mini")
    assert isinstance(refusal, PermissionDenied) and refusal.status == 403 and refusal.code == "model_not_allowed"
    assert refusal.message == "The API key 'ci' may not use model 'gpt-4o-mini' (allowed: gpt-4o, llama*)."


def test_scopes_are_checked_and_default_to_none() -> None:
    key, _ = make_key("ci", now=NOW)
    assert key.scopes == [] and not key.has_scope("admin")
    key, _ = make_key("ops", now=NOW, scopes="metrics, admin")
    assert key.scopes == ["admin", "metrics"] and key.public(NOW)["scopes"] == ["admin", "metrics"]
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        make_key("x", now=NOW, scopes=["root"])


def test_a_budget_stops_the_key_at_the_first_request_after_the_limit() -> None:
    keys = ring(FakeClock(NOW))
    key, _ = make_key("ci", now=NOW, budget_usd=1.0)
    keys.load([key], {key.id: 0.70})
    keys.admit(key.id)
    keys.record(key.id, 0.25, 100)  # 0.95: still under
    keys.admit(key.id)
    keys.record(key.id, 0.25, 100)  # 1.20: this request crossed the limit and was allowed to finish
    with pytest.raises(BudgetExceeded) as info:
        keys.admit(key.id)
    assert info.value.status == 429 and info.value.code == "insufficient_quota"
    assert "spent $1.2000 of $1.00 this month; it resets at 2026-04-01T00:00:00Z" in info.value.message


def test_spend_moves_from_unsettled_to_settled_without_double_counting() -> None:
    keys = ring(FakeClock(NOW))
    key, _ = make_key("ci", now=NOW, budget_usd=10.0)
    keys.load([key], {key.id: 1.0})
    keys.record(key.id, 0.5, 0)
    keys.settled({key.id: 0.5})
    assert keys.spend(key.id) == pytest.approx(1.5)
    keys.load([key], {key.id: 1.5})  # the reload sees the written row; nothing is counted twice
    assert keys.spend(key.id) == pytest.approx(1.5)


def test_a_new_period_starts_from_zero() -> None:
    clock = FakeClock(datetime(2026, 3, 31, 23, 59, tzinfo=UTC).timestamp())
    keys = ring(clock)
    key, _ = make_key("ci", now=clock.now, budget_usd=1.0, budget_period="daily")
    keys.load([key], {key.id: 5.0})
    with pytest.raises(BudgetExceeded, match="this day; it resets at 2026-04-01T00:00:00Z"):
        keys.admit(key.id)
    clock.advance(120)
    keys.admit(key.id)
    assert keys.spend(key.id) == 0.0


def test_total_budgets_never_reset() -> None:
    keys = ring(FakeClock(NOW))
    key, _ = make_key("ci", now=NOW, budget_usd=1.0, budget_period="total")
    keys.load([key], {key.id: 1.0})
    with pytest.raises(BudgetExceeded, match=r"of \$1.00 in total\.$"):
        keys.admit(key.id)


def test_rate_limits_refuse_with_retry_after() -> None:
    clock = FakeClock(NOW)
    keys = ring(clock)
    key, _ = make_key("ci", now=NOW, rpm=1, tpm=100)
    keys.load([key], {})
    keys.admit(key.id)
    with pytest.raises(RateLimited, match="1 requests per minute") as info:
        keys.admit(key.id)
    assert info.value.headers() == {"retry-after": "60"}
    clock.advance(60)
    keys.record(key.id, 0.0, 250)
    with pytest.raises(RateLimited, match="100 tokens per minute"):
        keys.admit(key.id)


def test_rate_buckets_survive_a_reload_unless_the_limit_changed() -> None:
    clock = FakeClock(NOW)
    keys = ring(clock)
    key, _ = make_key("ci", now=NOW, rpm=1)
    keys.load([key], {})
    keys.admit(key.id)
    keys.load([key], {})
    with pytest.raises(RateLimited):
        keys.admit(key.id)
    key.rpm = 5
    keys.put(key)
    keys.admit(key.id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rpm": 0}, "rpm: expected a positive integer"),
        ({"budget_usd": -1}, "budget_usd: expected a non-negative number"),
        ({"budget_period": "yearly"}, "budget_period: expected one of daily, weekly, monthly, total"),
        ({"name": " "}, "name: expected a non-empty string"),
        ({"hash": "x"}, "unknown key field 'hash'"),
        ({"models": 3}, "models: expected a comma-separated string"),
    ],
)
def test_bad_changes_are_refused(changes: dict[str, object], message: str) -> None:
    key, _ = make_key("ci", now=NOW)
    with pytest.raises(ValueError, match=message):
        apply_changes(key, changes)


def test_models_parse_from_text_or_lists() -> None:
    assert parse_models("gpt-4o,llama*  qwen") == ["gpt-4o", "llama*", "qwen"]
    assert parse_models(["a", " b "]) == ["a", "b"]
    assert parse_models(None) == []
