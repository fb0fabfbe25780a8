"""The xllamacpp engine: llama.cpp's own server code in-process, with its parallel slots.

xllamacpp (prebuilt wheels on PyPI) wraps llama-server's request handling, so chat
templates from the GGUF, tool-call parsing, grammars and JSON schema output, stop
sequences, embeddings and usage counted by the model's own tokenizer all behave exactly
as they do in llama-server. Its calls release the GIL and are safe from several threads;
the server schedules concurrent requests onto `parallel` slots sharing one KV cache.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from typing import Any, ClassVar

from ..bridge import Emit
from ..gguf import GGUFInfo
from .base import EngineError, EngineUnavailable, ModelSpec, error_payload

LOG_QUIET = -1  # llama.cpp logs nothing; errors reach us as exceptions and error payloads
PROPS_TIMEOUT_S = 5.0


def _module() -> Any:
    try:
        import xllamacpp  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EngineUnavailable(f"the xllamacpp engine is not installed (pip install xllamacpp): {exc}") from None
    return xllamacpp


class XLlamaCppEngine:
    name: ClassVar[str] = "xllamacpp"

    def __init__(self) -> None:
        self._x = _module()

    def load(self, spec: ModelSpec, info: GGUFInfo) -> XLlamaCppModel:
        params = self._params(spec, info)
        try:
            server = self._x.Server(params)
            # The constructor returns before llama.cpp's task loop starts, and a loop that
            # starts after a stop runs forever (closing the model then hangs): one request
            # through the loop (metrics, cheapest) makes sure it is running.
            server.handle_metrics()
        except Exception as exc:  # llama.cpp says only "Failed to init server"
            raise EngineError(f"llama.cpp could not load {spec.path}: {exc}") from None
        return XLlamaCppModel(server, params.n_parallel, _template_supports_tools(server, params.api_keys[0]))

    def _params(self, spec: ModelSpec, info: GGUFInfo) -> Any:
        x = self._x
        p = x.CommonParams()
        p.model.path = spec.path
        p.n_ctx = spec.context_size(info)
        p.n_parallel = max(1, spec.parallel)
        p.kv_unified = True  # slots share one cache: a long request may use all of it
        p.verbosity = LOG_QUIET
        p.warmup = False
        # Jinja renders the GGUF's own template, which is what formats `tools` into the
        # prompt and lets llama.cpp parse tool calls out of the reply.
        p.use_jinja = True
        # The library also opens llama-server's HTTP listener; keep it on loopback, on a
        # free port, behind a key nobody knows. llmmux calls the handlers directly (and
        # reads /props from it once, see `_template_supports_tools`).
        p.hostnames = ["127.0.0.1"]
        p.port = 0
        p.api_keys = [secrets.token_urlsafe(24)]
        p.endpoint_slots = False
        p.endpoint_metrics = True  # see `load`
        p.ui = False
        p.n_threads_http = 1
        if spec.n_gpu_layers is not None:
            p.n_gpu_layers = spec.n_gpu_layers
        if spec.n_threads:
            p.cpuparams.n_threads = spec.n_threads
            p.cpuparams_batch.n_threads = spec.n_threads
        if spec.n_batch:
            p.n_batch = spec.n_batch
            p.n_ubatch = min(p.n_ubatch, spec.n_batch)
        if spec.embeds(info):
            _embedding_params(x, p, spec, info)
        if spec.flash_attn is not None:
            kinds = x.llama_flash_attn_type
            on, off = kinds.LLAMA_FLASH_ATTN_TYPE_ENABLED, kinds.LLAMA_FLASH_ATTN_TYPE_DISABLED
            p.flash_attn_type = on if spec.flash_attn else off
        p.cache_type_k = _cache_type(x, spec.cache_type_k)
        p.cache_type_v = _cache_type(x, spec.cache_type_v)
        p.load_mode = _load_mode(x, spec.mmap, spec.mlock)
        if spec.chat_template:
            p.chat_template = spec.chat_template
        for key, value in spec.options.items():  # anything else llama.cpp's params offer
            if not hasattr(p, key):
                raise EngineError(f"xllamacpp has no parameter {key!r}")
            setattr(p, key, value)
        return p


def _embedding_params(x: Any, p: Any, spec: ModelSpec, info: GGUFInfo) -> None:
    p.embedding = True
    pooling = spec.pooling_type(info)
    if pooling is not None:
        p.pooling_type = x.llama_pooling_type(pooling)
    # An input is embedded in one micro-batch: make that the whole context, or every input
    # past llama.cpp's default 512 tokens fails.
    p.n_batch = p.n_ubatch = spec.n_batch or p.n_ctx


def _template_supports_tools(server: Any, key: str) -> bool | None:
    """llama.cpp's own verdict on the chat template (`chat_template_caps` in /props, the one
    fact its handlers do not expose), read once from the loopback listener; None if unknown."""
    address = server.listening_address
    url = (address if address.startswith("http") else "http://" + address).rstrip("/") + "/props"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with opener.open(request, timeout=PROPS_TIMEOUT_S) as reply:
            caps = json.loads(reply.read()).get("chat_template_caps") or {}
    except (OSError, ValueError, AttributeError):
        return None
    supports = caps.get("supports_tools")
    return supports if isinstance(supports, bool) else None


def _cache_type(x: Any, name: str) -> Any:
    try:
        return x.ggml_type["GGML_TYPE_" + name.upper()]
    except KeyError:
        raise EngineError(f"unknown KV cache type {name!r} (try f16, q8_0 or q4_0)") from None


def _load_mode(x: Any, mmap: bool, mlock: bool) -> Any:
    modes = x.llama_load_mode
    if mmap:
        return modes.LLAMA_LOAD_MODE_MMAP_MLOCK if mlock else modes.LLAMA_LOAD_MODE_MMAP
    return modes.LLAMA_LOAD_MODE_MLOCK if mlock else modes.LLAMA_LOAD_MODE_NONE


class XLlamaCppModel:
    schema_output = True

    def __init__(self, server: Any, parallel: int, tools: bool | None) -> None:
        self._server: Any = server
        self.parallel = parallel
        self.tools = tools

    def chat(self, body: bytes, emit: Emit) -> None:
        server = self._server
        if server is None:
            raise EngineError("the model was unloaded")
        try:
            # Bytes in, bytes out: the handler hands each payload to `emit` as it comes
            # (one response, or every stream chunk) and stops when `emit` returns True.
            server.handle_chat_completions(body, emit)
        except ValueError as exc:  # llama.cpp's invalid_argument: the request's fault
            emit(error_payload(400, str(exc), "invalid_request_error"))
        except RuntimeError as exc:
            emit(error_payload(500, str(exc), "server_error"))

    def embed(self, body: bytes, emit: Emit) -> None:
        server = self._server
        if server is None:
            raise EngineError("the model was unloaded")
        try:
            emit(server.handle_embeddings(body))  # one reply, no stream: nothing to stop early
        except ValueError as exc:
            emit(error_payload(400, str(exc), "invalid_request_error"))
        except RuntimeError as exc:  # a body llama.cpp cannot parse surfaces as a JSON error
            emit(error_payload(500, str(exc), "server_error"))

    def close(self) -> None:
        # Dropping the last reference runs llama.cpp's destructor, which stops its loop
        # and frees the weights and KV cache (it joins threads: call off the event loop).
        self._server = None
