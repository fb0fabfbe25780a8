"""The model pool: loads models on demand and unloads them by the policy's rules.

    pool = ModelPool(loader, Limits(max_loaded_models=2), provider="local")
    lease = await pool.acquire("qwen-7b")      # loads it (once, however many ask at once)
    try:
        ...                                    # use lease.model
    finally:
        lease.release()                        # keep-alive timer starts when the last user leaves

Requests for a model that cannot be loaded yet (the pool is full of busy models) wait in
a queue grouped by model, first come first served: the busy models they need room from
are drained, and everyone waiting for the same model is let in together once it is
loaded. A full queue or a long wait is a 503 with Retry-After, never an unbounded pile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..config.units import FOREVER
from ..errors import LLMMuxError, ModelNotFound
from .errors import busy, load_failed
from .pool_policy import Limits, Load, PoolPolicy, Refuse, Resident, State

log = logging.getLogger("llmmux.local")

M = TypeVar("M")


class ModelLoader(Protocol[M]):
    """What the pool needs from whoever knows the models and the engine."""

    def names(self) -> list[str]: ...

    def keep_alive(self, name: str) -> float: ...

    async def memory(self, name: str) -> int:
        """Estimated resident bytes; raises LLMMuxError when the model cannot be described."""

    async def load(self, name: str) -> M: ...

    async def unload(self, name: str, model: M) -> None: ...


class ModelLease(Generic[M]):
    """One request's hold on a loaded model. The model stays loaded until every lease is
    released, including work still running on a thread after its request was cancelled."""

    __slots__ = ("_holds", "_release", "_released", "keep_alive", "model", "name")

    def __init__(self, name: str, model: M, keep_alive: float, release: Callable[[float], None]) -> None:
        self.name = name
        self.model = model
        self.keep_alive = keep_alive
        self._release: Callable[[float], None] | None = release
        self._holds = 1
        self._released = False

    def hold(self, until: asyncio.Future[Any]) -> None:
        """Keep the model until `until` completes as well (an engine thread)."""
        self._holds += 1
        until.add_done_callback(lambda _: self._drop())

    def release(self) -> None:
        """The request is done with the model; idempotent."""
        if not self._released:
            self._released = True
            self._drop()

    def _drop(self) -> None:
        self._holds -= 1
        if self._holds == 0 and self._release is not None:
            release, self._release = self._release, None
            release(self.keep_alive)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str
    state: str
    memory: int
    in_flight: int
    queued: int
    keep_alive: float
    loaded_at: float | None
    last_used: float | None
    expires_at: float | None
    last_error: str | None = None


class ModelPool(Generic[M]):
    """At most `limits` of `loader`'s models resident; see the module docstring."""

    def __init__(
        self,
        loader: ModelLoader[M],
        limits: Limits,
        *,
        provider: str,
        max_queue: int = 64,
        queue_timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        reaper: bool = True,
    ) -> None:
        self.loader = loader
        self.provider = provider
        self.policy = PoolPolicy(limits, clock)
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._clock, self._wall = clock, wall
        self._models: dict[str, M] = {}
        self._memory: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._unloading: dict[str, asyncio.Task[None]] = {}
        self._queue: dict[str, list[asyncio.Future[bool]]] = {}  # insertion order is arrival order
        self._evicting: set[str] = set()
        self._errors: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._use_reaper = reaper
        self._reap_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._closed = False

    # -- requests --

    async def acquire(self, name: str, keep_alive: float | None = None) -> ModelLease[M]:
        """Wait until `name` is loaded and may take a request; raises a 503 when too busy.

        A request holds its place on the model (counts as in flight) from the moment it is
        admitted, while the model is still loading too: a model is never evicted between
        being loaded for some requests and those requests starting.
        """
        if name not in self.loader.names():
            raise ModelNotFound(name)
        keep_alive = self.loader.keep_alive(name) if keep_alive is None else keep_alive
        deadline = asyncio.get_running_loop().time() + self.queue_timeout
        while True:
            if self._closed:
                raise busy(self.provider, "the model pool is shutting down")
            resident = self.policy.residents.get(name)
            if resident is not None and resident.state is not State.UNLOADING and self._open(resident):
                self.policy.start(name)  # the hot path: no I/O, no await before the lease
                return await self._lease(name, keep_alive)
            memory = await self._estimate(name)  # the file's header, read again only when it changed
            resident = self.policy.residents.get(name)
            if resident is None and not self._queue and self._try_load(name, memory):
                continue
            if resident is not None and resident.state is not State.UNLOADING and self._open(resident):
                continue  # loaded by someone else while we read the header
            if await self._wait_turn(name, deadline, keep_alive):
                return await self._lease(name, keep_alive)

    async def _lease(self, name: str, keep_alive: float) -> ModelLease[M]:
        """The lease for a request already counted in flight, once its model is loaded."""
        resident = self.policy.residents[name]
        release = functools.partial(self._finish, resident)
        loading = self._loading.get(name)
        if loading is not None:
            try:
                await asyncio.shield(loading)
            except BaseException:
                release(keep_alive)
                raise
        return ModelLease(name, self._models[name], keep_alive, release)

    def _open(self, resident: Resident) -> bool:
        return not resident.draining and resident.name not in self._evicting

    def _try_load(self, name: str, memory: int) -> bool:
        """Start loading `name` if the policy allows it now; False means queue up."""
        decision = self.policy.admit(name, memory)
        if isinstance(decision, Refuse):
            raise self._refused(name, decision)
        if isinstance(decision, Load):
            self._begin_load(name, memory, decision.evict)
            return True
        return False

    async def _wait_turn(self, name: str, deadline: float, keep_alive: float) -> bool:
        """Queue behind the models asked for earlier. True: admitted (already counted in
        flight on `name`); False: look again (the model was unloaded meanwhile)."""
        waiting = sum(len(group) for group in self._queue.values())
        if waiting >= self.max_queue:
            raise busy(
                self.provider,
                f"model '{name}' cannot be loaded now and {waiting} requests are already queued for models",
            )
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.setdefault(name, []).append(turn)
        self._pump()
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(turn), timeout=max(0.0, remaining))
        except TimeoutError:
            raise busy(
                self.provider,
                f"model '{name}' could not be loaded within {self.queue_timeout:.0f}s: "
                "the pool is busy with other models",
            ) from None
        except asyncio.CancelledError:
            resident = self.policy.residents.get(name)
            admitted = turn.done() and not turn.cancelled() and turn.exception() is None and turn.result()
            if admitted and resident is not None:
                self._finish(resident, keep_alive)  # admitted just as we were cancelled: give it back
            raise
        finally:
            group = self._queue.get(name)
            if group is not None and turn in group:
                group.remove(turn)
                if not group:
                    del self._queue[name]
                    self._pump()  # nobody waits for this model any more: lift the drains it caused
            if not turn.done():
                turn.cancel()

    def _finish(self, resident: Resident, keep_alive: float) -> None:
        if self.policy.residents.get(resident.name) is not resident:
            return  # that load failed or the model was unloaded since
        self.policy.finish(resident.name, keep_alive)
        if not resident.idle:
            return
        if resident.name in self.policy.expired() or resident.name in self._evicting:
            self._begin_unload(resident.name)
        elif resident.draining or self._queue:
            self._pump()
        self._changed()

    # -- the queue --

    def _pump(self) -> None:
        """Serve the queue head first: let its group in, load its model, or drain room for it."""
        if self._closed:
            return
        self.policy.clear_drains()
        while self._queue:
            name, group = next(iter(self._queue.items()))
            resident = self.policy.residents.get(name)
            if resident is not None and (resident.state is State.UNLOADING or name in self._evicting):
                return  # reloaded once the unload completes
            if resident is None and not self._admit_head(name, group):
                return
            del self._queue[name]
            for turn in group:
                if not turn.done():
                    if name in self.policy.residents:
                        self.policy.start(name)  # hold its place before anything can evict it
                    turn.set_result(name in self.policy.residents)

    def _admit_head(self, name: str, group: list[asyncio.Future[bool]]) -> bool:
        decision = self.policy.admit(name, self._memory[name])
        if isinstance(decision, Load):
            self._begin_load(name, self._memory[name], decision.evict)
            return True
        if isinstance(decision, Refuse):
            error = self._refused(name, decision)
            for turn in group:
                if not turn.done():
                    turn.set_exception(error)
            return True
        self.policy.drain(decision.drain)
        for victim in decision.drain:
            resident = self.policy.residents.get(victim)
            if resident is not None and resident.idle:
                self._begin_unload(victim)
        return False

    def _refused(self, name: str, decision: Refuse) -> LLMMuxError:
        if decision.permanent:
            return load_failed(self.provider, name, decision.reason)
        return busy(self.provider, f"model '{name}' cannot be loaded now: {decision.reason}")

    # -- loading and unloading --

    async def _estimate(self, name: str) -> int:
        try:
            memory = await self.loader.memory(name)
        except LLMMuxError as exc:
            self._errors[name] = exc.message
            raise
        self._memory[name] = memory
        return memory

    def _begin_load(self, name: str, memory: int, evict: list[str]) -> None:
        self.policy.reserve(name, memory, self.loader.keep_alive(name))
        unloads = [self._begin_unload(victim) for victim in evict]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # waiters may all be gone
        self._loading[name] = done
        self._spawn(self._load(name, unloads, done))

    async def _load(self, name: str, unloads: list[asyncio.Task[None]], done: asyncio.Future[None]) -> None:
        await asyncio.gather(*unloads, return_exceptions=True)  # free the memory first
        started = time.perf_counter()
        try:
            model = await self.loader.load(name)
        except BaseException as exc:
            self.policy.remove(name)
            reason = exc.message if isinstance(exc, LLMMuxError) else str(exc) or type(exc).__name__
            self._errors[name] = reason
            done.set_exception(exc if isinstance(exc, LLMMuxError) else load_failed(self.provider, name, reason))
            if not isinstance(exc, Exception):
                raise
        else:
            self._models[name] = model
            self._errors.pop(name, None)
            self.policy.loaded(name)
            log.info("%s: loaded %s in %.0f ms", self.provider, name, (time.perf_counter() - started) * 1000)
            done.set_result(None)
        finally:
            del self._loading[name]
            self._pump()
            self._changed()

    def _begin_unload(self, name: str) -> asyncio.Task[None]:
        task = self._unloading.get(name)
        if task is not None:
            return task
        self.policy.unloading(name)
        task = self._spawn(self._unload(name, self._models.pop(name)))
        self._unloading[name] = task
        return task

    async def _unload(self, name: str, model: M) -> None:
        try:
            await self.loader.unload(name, model)
            log.info("%s: unloaded %s", self.provider, name)
        except Exception:
            log.exception("%s: unloading %s failed", self.provider, name)
        finally:
            self.policy.remove(name)
            self._evicting.discard(name)
            del self._unloading[name]
            self._pump()
            self._changed()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- keep-alive --

    async def reap(self) -> list[str]:
        """Unload every model whose keep-alive has run out; returns their names."""
        expired = self.policy.expired()
        await asyncio.gather(*(self._begin_unload(name) for name in expired))
        return expired

    def _changed(self) -> None:
        """Something that moves an expiry happened: wake waiters, re-arm the keep-alive timer."""
        self._wake.set()
        if not self._use_reaper or self._closed:
            return
        if self._reap_timer is not None:
            self._reap_timer.cancel()
            self._reap_timer = None
        expiry = self.policy.next_expiry()
        if expiry is not None:
            delay = max(0.0, expiry - self._clock())
            self._reap_timer = asyncio.get_running_loop().call_later(delay, self._reap_due)

    def _reap_due(self) -> None:
        self._reap_timer = None
        for name in self.policy.expired():
            self._begin_unload(name)
        self._changed()

    # -- administration --

    async def load(self, name: str, keep_alive: float | None = None) -> None:
        """Load `name` now (preload, or `POST /admin/models/{name}/load`)."""
        (await self.acquire(name, keep_alive)).release()

    async def unload(self, name: str) -> bool:
        """Unload `name` once its requests in flight finish (new ones wait for it to load
        again); False if it was not loaded."""
        if name in self._loading:
            await asyncio.gather(asyncio.shield(self._loading[name]), return_exceptions=True)
        resident = self.policy.residents.get(name)
        if resident is None:
            return False
        if resident.state is State.READY:
            self._evicting.add(name)
            if resident.idle:
                self._begin_unload(name)
        while self.policy.residents.get(name) is resident:  # not a later load of the same model
            task = self._unloading.get(name)
            if task is not None:
                await asyncio.shield(task)
            else:
                self._wake.clear()
                await self._wake.wait()
        return True

    def status(self) -> list[ModelStatus]:
        """Every model the pool knows, resident ones first."""
        rows = [self._row(r) for r in sorted(self.policy.residents.values(), key=lambda r: -r.last_used)]
        for name in self.loader.names():
            if name not in self.policy.residents:
                rows.append(
                    ModelStatus(
                        name,
                        "unloaded",
                        self._memory.get(name, 0),
                        0,
                        len(self._queue.get(name, [])),
                        self.loader.keep_alive(name),
                        None,
                        None,
                        None,
                        self._errors.get(name),
                    )
                )
        return rows

    def _row(self, r: Resident) -> ModelStatus:
        to_wall = self._wall() - self._clock()
        return ModelStatus(
            name=r.name,
            state="draining" if r.draining or r.name in self._evicting else r.state.value,
            memory=r.memory,
            in_flight=r.in_flight,
            queued=len(self._queue.get(r.name, [])),
            keep_alive=r.keep_alive,
            loaded_at=r.loaded_at + to_wall if r.loaded_at is not None else None,
            last_used=r.last_used + to_wall,
            expires_at=r.expires_at + to_wall if r.expires_at is not None else None,
            last_error=self._errors.get(r.name),
        )

    def model(self, name: str) -> M | None:
        return self._models.get(name)

    async def aclose(self) -> None:
        """Refuse new requests, fail the queued ones, and unload everything."""
        self._closed = True
        if self._reap_timer is not None:
            self._reap_timer.cancel()
        for group in self._queue.values():
            for turn in group:
                if not turn.done():
                    turn.set_exception(busy(self.provider, "the model pool is shutting down"))
        self._queue.clear()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for name in [n for n, r in self.policy.residents.items() if r.state is State.READY]:
            self._begin_unload(name)
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


__all__ = ["FOREVER", "ModelLease", "ModelLoader", "ModelPool", "ModelStatus"]
