"""The pool's loader for model files (GGUF, and MLX folders): describes, loads and unloads models through an engine.

Loading and unloading block (llama.cpp reads weights, joins threads), so they run on a
small executor of their own; each loaded model gets an executor sized to its slots for
generation, so a busy model cannot starve anything else of threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import LLMMuxError
from . import mlx_folder
from .bridge import Slots, ThreadStream
from .catalog import LocalSettings
from .engines import Engine, EngineError, EngineModel, EngineUnavailable, ModelSpec, select_engine
from .engines.loop_guard import LoopGuardModel
from .engines.tool_prompt import ToolPromptModel
from .errors import BUSY_RETRY_AFTER_S, load_failed
from .gguf import GGUFError, GGUFInfo, read_info

LOAD_THREADS = 2


@dataclass(eq=False)
class LoadedModel:
    """A model in memory: the engine's handle, its slots and the threads that run it."""

    spec: ModelSpec
    info: GGUFInfo
    engine: EngineModel
    slots: Slots
    executor: concurrent.futures.ThreadPoolExecutor
    engine_name: str = ""
    streams: set[ThreadStream] = field(default_factory=set)

    async def open(self, body: bytes, *, embed: bool = False) -> ThreadStream:
        """Start one chat (or embeddings) request once a slot is free; the slot is freed
        when its thread ends."""
        await self.slots.enter()
        call = self.engine.embed if embed else self.engine.chat
        try:
            stream = ThreadStream(functools.partial(call, body), self.executor)
        except BaseException:
            self.slots.leave()
            raise
        self.streams.add(stream)

        def finished(_: object) -> None:
            self.streams.discard(stream)
            self.slots.leave()

        stream.done.add_done_callback(finished)
        return stream

    async def drain(self) -> None:
        """Stop every running request and wait for their threads."""
        for stream in list(self.streams):
            stream.cancel()
        await asyncio.gather(*(s.done for s in list(self.streams)), return_exceptions=True)

    def close(self) -> None:
        """Free the model (blocking)."""
        self.engine.close()
        self.executor.shutdown(wait=True)


class GGUFLoader:
    """Implements the pool's `ModelLoader` for a provider's GGUF models."""

    def __init__(self, settings: LocalSettings, provider: str) -> None:
        self.settings = settings
        self.provider = provider
        # MLX takes model folders as well as GGUF files; llama.cpp's engines take GGUF files only.
        self._describe: Callable[[str], GGUFInfo] = mlx_folder.describe if settings.engine == "mlx" else read_info
        self._engine: Engine | None = None
        self._infos: dict[str, tuple[tuple[float, int], GGUFInfo]] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            LOAD_THREADS, thread_name_prefix=f"llmmux-{provider}-load"
        )

    def names(self) -> list[str]:
        return list(self.settings.models)

    def spec(self, name: str) -> ModelSpec:
        return self.settings.models[name]

    def keep_alive(self, name: str) -> float:
        spec = self.settings.models.get(name)
        return spec.keep_alive if spec is not None and spec.keep_alive is not None else self.settings.keep_alive

    def engine(self) -> Engine:
        """The configured engine; raises EngineUnavailable with what to install."""
        if self._engine is None:
            self._engine = select_engine(self.settings.engine)
        return self._engine

    async def info(self, name: str) -> GGUFInfo:
        """The model file's header, read again only when the file changes."""
        path = self.spec(name).path
        try:
            stat = await asyncio.get_running_loop().run_in_executor(self._executor, os.stat, path)
            key = (stat.st_mtime, stat.st_size)
            cached = self._infos.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            info = await asyncio.get_running_loop().run_in_executor(self._executor, self._describe, path)
        except FileNotFoundError:
            raise load_failed(self.provider, name, f"{path} does not exist") from None
        except (GGUFError, OSError) as exc:
            raise load_failed(self.provider, name, str(exc)) from None
        self._infos[name] = (key, info)
        return info

    def cached_info(self, name: str) -> GGUFInfo | None:
        """The header read last time, if any (status tables must not touch the disk)."""
        cached = self._infos.get(name)
        return cached[1] if cached is not None else None

    async def memory(self, name: str) -> int:
        return self.spec(name).estimate_memory(await self.info(name))

    async def load(self, name: str) -> LoadedModel:
        spec, info = self.spec(name), await self.info(name)
        try:
            engine = self.engine()
            model = await asyncio.get_running_loop().run_in_executor(self._executor, engine.load, spec, info)
        except (EngineError, EngineUnavailable) as exc:
            raise load_failed(self.provider, name, str(exc)) from None
        except LLMMuxError:
            raise
        except Exception as exc:  # whatever a native library raises, it is this model's failure
            raise load_failed(self.provider, name, f"{type(exc).__name__}: {exc}") from None
        if spec.loop_guard is not None and not spec.embeds(info):
            model = LoopGuardModel(model, spec.loop_guard, name)  # under the tool template: it sees the raw text
        if model.tools is False:
            model = ToolPromptModel(model, constrain=model.schema_output)
        slots = Slots(name, model.parallel, self.settings.max_queue, BUSY_RETRY_AFTER_S, self.provider)
        executor = concurrent.futures.ThreadPoolExecutor(model.parallel, thread_name_prefix=f"llmmux-{name}")
        return LoadedModel(spec, info, model, slots, executor, engine.name)

    async def unload(self, name: str, model: LoadedModel) -> None:
        await model.drain()
        await asyncio.get_running_loop().run_in_executor(self._executor, model.close)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
