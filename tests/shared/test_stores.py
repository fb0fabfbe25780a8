"""The shared operations behave the same on Redis and Valkey (Lua scripts) and on the holder (Python)."""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
from collections.abc import AsyncIterator

import msgspec
import pytest

from llmmux.shared.holder import Holder, HolderStore
from llmmux.shared.redis_store import RedisStore
from llmmux.shared.store import Ask, Budget, Giveback, SharedStore


@pytest.fixture(params=["redis", "valkey", "holder"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SharedStore]:
    if request.param in ("redis", "valkey"):  # the same scripts on both servers, valkey:// for Valkey
        made: SharedStore = RedisStore(request.getfixturevalue(f"{request.param}_url"), prefix="t:")
        await made.start()
        yield made
        await made.aclose()
        return
    folder = tempfile.mkdtemp(prefix="llmmux-holder-")
    path = os.path.join(folder, "state.sock")
    server = asyncio.ensure_future(Holder().serve(path))
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    made = HolderStore(path)
    await made.start()
    yield made
    await made.aclose()
    server.cancel()


async def test_an_rpm_bucket_admits_exactly_its_size_to_many_callers(store: SharedStore) -> None:
    grants = await asyncio.gather(*(store.acquire("provider.p", Ask(rpm=60)) for _ in range(100)))
    admitted = [g for g in grants if g.wait == 0.0]
    assert len(admitted) == 60
    refused = [g for g in grants if g.wait]
    assert {g.limit for g in refused} == {"rpm"}
    assert all(0 < g.wait <= 1.0 for g in refused)


async def test_a_tpm_refusal_takes_no_request_slot(store: SharedStore) -> None:
    assert (await store.acquire("provider.p", Ask(rpm=2, tpm=100, tokens=80))).wait == 0.0
    refused = await store.acquire("provider.p", Ask(rpm=2, tpm=100, tokens=80))
    assert refused.limit == "tpm" and refused.wait > 0
    # The refused request gave its rpm token back: one is left for a small request.
    assert (await store.acquire("provider.p", Ask(rpm=2, tpm=100, tokens=10))).wait == 0.0
    assert (await store.acquire("provider.p", Ask(rpm=2, tpm=100, tokens=1))).limit == "rpm"


async def test_concurrency_leases_cap_release_and_expire(store: SharedStore) -> None:
    ask = [Ask(cap=2, lease=f"l{i}", ttl_s=0.3) for i in range(3)]
    assert (await store.acquire("provider.c", ask[0])).wait == 0.0
    assert (await store.acquire("provider.c", ask[1])).wait == 0.0
    full = await store.acquire("provider.c", ask[2])
    assert full.limit == "concurrency" and math.isinf(full.wait)
    await store.release("provider.c", "l0", None, 0, None, 0.0)
    assert (await store.acquire("provider.c", ask[2])).wait == 0.0
    # Nobody renews l1 and l2 (their holder was killed): they run out.
    await asyncio.sleep(0.4)
    assert (await store.acquire("provider.c", Ask(cap=2, lease="l3", ttl_s=5))).wait == 0.0
    assert (await store.acquire("provider.c", Ask(cap=2, lease="l4", ttl_s=5))).wait == 0.0


async def test_renewed_leases_outlive_their_first_expiry(store: SharedStore) -> None:
    assert (await store.acquire("provider.r", Ask(cap=1, lease="a", ttl_s=0.3))).wait == 0.0
    for _ in range(3):
        await asyncio.sleep(0.15)
        await store.renew("provider.r", ["a"], 0.3)
    assert (await store.acquire("provider.r", Ask(cap=1, lease="b", ttl_s=0.3))).limit == "concurrency"


async def test_leased_rpm_tokens_never_exceed_the_bucket_and_come_back(store: SharedStore) -> None:
    grant = await store.acquire("provider.l", Ask(rpm=60, rpm_more=40))
    assert (grant.wait, grant.requests) == (0.0, 41)
    # What is left (19) is all a second lease gets, however much it asks for.
    assert (await store.acquire("provider.l", Ask(rpm=60, rpm_more=100))).requests == 19
    assert (await store.acquire("provider.l", Ask(rpm=60))).limit == "rpm"
    # Asking only for extras never refuses: the instance still holds tokens of its own.
    extras = await store.acquire("provider.l", Ask(rpm=60, rpm_need=0, rpm_more=5))
    assert (extras.wait, extras.requests) == (0.0, 0)
    # Unused tokens given back are there for everyone again.
    await store.release("provider.l", None, None, 0, None, 0.0, Giveback(slots=0, rpm=60, requests=30))
    assert (await store.acquire("provider.l", Ask(rpm=60, rpm_more=100))).requests == 30


async def test_concurrency_slots_are_counted_per_holder(store: SharedStore) -> None:
    a = await store.acquire("provider.s", Ask(cap=10, lease="a", ttl_s=5, slots_more=6))
    assert a.slots == 7
    b = await store.acquire("provider.s", Ask(cap=10, lease="b", ttl_s=5, slots_more=6))
    assert b.slots == 3  # the rest of the cap, never more
    assert (await store.acquire("provider.s", Ask(cap=10, lease="c", ttl_s=5))).limit == "concurrency"
    await store.release("provider.s", "a", None, 0, None, 0.0, Giveback(slots=5))
    assert (await store.acquire("provider.s", Ask(cap=10, lease="c", ttl_s=0.2, slots_more=9))).slots == 5
    await asyncio.sleep(0.3)  # c's holder stopped renewing: its five slots run out
    assert (await store.acquire("provider.s", Ask(cap=10, lease="d", ttl_s=5, slots_more=9))).slots == 5


async def test_spend_is_seeded_once_then_counted(store: SharedStore) -> None:
    first = await store.acquire("key.k", Ask(spend_key="k:0", spend_seed=1.5))
    assert first.spend == 1.5
    await store.release("key.k", None, None, 0, "k:0", 0.25)
    again = await store.acquire("key.k", Ask(spend_key="k:0", spend_seed=99.0))
    assert again.spend == pytest.approx(1.75)
    # Spend is only added to a counter that was seeded (after a Redis restart, the ledger reseeds it).
    await store.release("key.k", None, None, 0, "k:other", 5.0)
    assert (await store.acquire("key.k", Ask(spend_key="k:other", spend_seed=2.0))).spend == 2.0


async def test_charge_budgets_checks_and_charges_several_counters_at_once(store: SharedStore) -> None:
    team, user = Budget("team.t:0", 1.0, seed=0.5), Budget("user.k.u:0", 0.3, seed=0.0)
    check = await store.charge_budgets([team, user], 0.0)
    assert (check.spends, check.over, check.refused) == ([0.5, 0.0], -1, False)
    check = await store.charge_budgets([team, user], 0.25)
    assert check.spends == pytest.approx([0.75, 0.25]) and not check.refused
    # The charge that crosses a limit is still added (the money is spent); the next check refuses.
    check = await store.charge_budgets([team, user], 0.25)
    assert check.spends == pytest.approx([1.0, 0.5]) and check.over == 0
    assert (await store.charge_budgets([Budget("user.k.u:0", 0.3)], 0.0)).over == 0
    # A budget without a limit only counts; an empty ask answers nothing.
    assert (await store.charge_budgets([Budget("tag.x:0", None, seed=7.0)], 1.0)).spends == [8.0]
    assert (await store.charge_budgets([], 1.0)).spends == []


async def test_concurrent_budget_charges_lose_nothing(store: SharedStore) -> None:
    budget = Budget("team.busy:0", 100.0)
    await asyncio.gather(*(store.charge_budgets([budget], 0.5) for _ in range(100)))
    assert (await store.charge_budgets([budget], 0.0)).spends == [50.0]


async def test_a_failure_streak_is_counted_by_everyone_and_ended_by_a_success(store: SharedStore) -> None:
    counts = await asyncio.gather(*(store.streak("provider.up", True) for _ in range(5)))
    assert sorted(counts) == [1, 2, 3, 4, 5]  # no failure lost, however close together
    assert await store.streak("provider.up", False) == 0
    assert await store.streak("provider.up", True) == 1
    assert await store.streak("provider.other", True) == 1


async def test_published_messages_reach_every_subscriber(store: SharedStore) -> None:
    seen: list[tuple[str, bytes]] = []
    store.subscribe(lambda channel, message: seen.append((channel, message)))
    await asyncio.sleep(0.2)  # Redis: the listener subscribes in the background
    await store.publish("keys", b"key_1")
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == [("keys", b"key_1")]


async def test_instances_expire_without_heartbeats(store: SharedStore) -> None:
    await store.heartbeat("a", msgspec.json.encode({"id": "a"}), 5.0)
    await store.heartbeat("b", msgspec.json.encode({"id": "b"}), 0.2)
    assert sorted(msgspec.json.decode(i)["id"] for i in await store.instances()) == ["a", "b"]
    await asyncio.sleep(0.3)
    assert [msgspec.json.decode(i)["id"] for i in await store.instances()] == ["a"]


async def test_blobs_expire(store: SharedStore) -> None:
    await store.put_blob("resp_1", b"body", 0.2)
    assert await store.get_blob("resp_1") == b"body"
    await asyncio.sleep(0.3)
    assert await store.get_blob("resp_1") is None
    await store.put_blob("resp_2", b"x", 5)
    assert await store.delete_blob("resp_2") is True
    assert await store.get_blob("resp_2") is None


async def test_acquire_all_answers_each_name_on_its_own_in_one_call(store: SharedStore) -> None:
    assert not (await store.acquire("key.k", Ask(rpm=1))).wait  # the key's one token is gone
    key, team, user = await store.acquire_all(
        [("key.k", Ask(rpm=1)), ("key.t", Ask(rpm=5, rpm_more=2)), ("eu.t.u", Ask(spend_key="t:u", spend_seed=0.5))]
    )
    assert key.wait > 0 and key.limit == "rpm"
    assert (team.wait, team.requests) == (0.0, 3)  # the team's token and two leased, the key's refusal aside
    assert user.spend == 0.5


async def test_tpm_and_money_are_leased_within_the_limit_and_the_budget(store: SharedStore) -> None:
    grant = await store.acquire(
        "key.m", Ask(tpm=600, tokens=100, tpm_more=1000, spend_key="m:0", budget=1.0, money_more=0.25)
    )
    assert (grant.tokens, grant.money, grant.spend) == (500, 0.25, 0.0)  # all the tokens left; the money asked
    again = await store.acquire("key.m", Ask(tpm=600, tokens=0, spend_key="m:0", budget=1.0, money_more=5.0))
    assert again.wait == 0.0 and again.spend == 0.25 and again.money == 0.75  # only what is left of the budget
    # Given back: the counter holds what was spent (here nothing).
    await store.release("key.m", None, 600, -500, "m:0", -1.0)
    assert (await store.acquire("key.m", Ask(spend_key="m:0"))).spend == 0.0
