"""The MLX engine: mlx-lm models, Apple Silicon's native engine (CPU builds run on Linux).

A model is an MLX folder (what `mlx_lm.convert` writes and mlx-community publishes) or a
llama-family GGUF file, converted once into an MLX folder in `cache_dir`. mlx-lm loads the
tokenizer with the model's chat template and tool-call markers; generation is
`mlx_lm.stream_generate`, one request at a time per model (mlx-lm's own server also
generates on a single thread), turned into OpenAI chat JSON by `chat_frames`.

Every MLX call runs on one thread that lives as long as the process. MLX keeps per-thread
state whose destructor takes the GIL: a pool thread ending while the interpreter shuts
down would abort the process, and a thread that never ends cannot.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import os
import queue
import resource
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..bridge import Emit
from ..gguf import GGUFInfo
from ..gguf_to_mlx import ConversionError, cached_conversion
from .base import EngineError, EngineUnavailable, ModelSpec, error_payload
from .chat_frames import (
    ChatBody,
    Reply,
    RequestError,
    TextScanner,
    decode_request,
    parse_tool_calls,
    template_messages,
)

DEFAULT_CACHE_DIR = "~/.cache/llmmux/mlx"
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# llama-server's sampling defaults, so a model answers alike on either engine.
DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P, DEFAULT_MIN_P = 0.8, 40, 0.95, 0.05
GENERATION_OPTIONS = ("max_kv_size", "kv_bits", "kv_group_size", "quantized_kv_start", "num_draft_tokens")

T = TypeVar("T")
_calls: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def on_mlx_thread(call: Callable[[], T]) -> T:
    """Run `call` on the MLX thread and wait for its result (callers are executor threads)."""
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = threading.Thread(target=_serve, name="llmmux-mlx", daemon=True)
            _thread.start()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    _calls.put((future, call))
    return future.result()


def _serve() -> None:
    while True:
        future, call = _calls.get()
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the waiting caller, who raises it
            future.set_exception(exc)


def import_mlx() -> tuple[Any, Any, Any]:
    """mlx.core, mlx_lm and mlx_lm.sample_utils, imported without mlx-lm's side effect."""
    import mlx.core as mx

    with _open_file_limit_kept():
        import mlx_lm
        import mlx_lm.sample_utils as sampling
    return mx, mlx_lm, sampling


@contextlib.contextmanager
def _open_file_limit_kept() -> Iterator[None]:
    """Import mlx-lm without letting it lower the open-file limit.

    mlx-lm sets RLIMIT_NOFILE to (2048, 4096) when imported (to raise macOS's 256). On a
    gateway that would cap connections at about 2,000 and lower the hard limit for good, so
    while it imports, limits may only go up.
    """
    real = resource.setrlimit

    def raise_only(kind: int, limits: tuple[int, int]) -> None:
        if kind == resource.RLIMIT_NOFILE:
            current = resource.getrlimit(kind)
            limits = (_at_least(current[0], limits[0]), _at_least(current[1], limits[1]))
        real(kind, limits)

    resource.setrlimit = raise_only
    try:
        yield
    finally:
        resource.setrlimit = real


def _at_least(current: int, wanted: int) -> int:
    return current if current == resource.RLIM_INFINITY or current >= wanted else wanted


class MLXEngine:
    name: ClassVar[str] = "mlx"

    def __init__(self) -> None:
        # Importing mlx-lm imports transformers (seconds): done on the MLX thread at first load,
        # so asking whether the engine is there never blocks the event loop.
        missing = [name for name in ("mlx", "mlx_lm") if importlib.util.find_spec(name) is None]
        if missing:
            raise EngineUnavailable(
                f"the mlx engine is not installed (pip install 'llmmux[mlx]'): no module named {', '.join(missing)}"
            )

    def load(self, spec: ModelSpec, info: GGUFInfo) -> MLXModel:
        return on_mlx_thread(lambda: self._load(spec, info))

    def _load(self, spec: ModelSpec, info: GGUFInfo) -> MLXModel:
        try:
            mx, mlx_lm, sampling = import_mlx()
        except ImportError as exc:  # installed but broken (a missing native library)
            raise EngineUnavailable(f"the mlx engine cannot be imported: {exc}") from None
        options = dict(spec.options)
        folder = self._folder(spec.path, options)
        # A template from config goes in before mlx-lm reads it for tool-call markers.
        template = {"chat_template": _template(spec.chat_template)} if spec.chat_template else None
        try:
            model, tokenizer = mlx_lm.load(str(folder), tokenizer_config=template)
            draft = (
                mlx_lm.load(str(self._folder(options["draft_model"], options)))[0]
                if options.get("draft_model")
                else None
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EngineError(f"mlx-lm could not load {spec.path}: {exc}") from None
        generation = {key: options[key] for key in GENERATION_OPTIONS if key in options}
        return MLXModel(spec, info, model, tokenizer, draft, generation, mx, mlx_lm, sampling)

    @staticmethod
    def _folder(path: str, options: dict[str, Any]) -> Path:
        source = Path(path)
        if source.is_dir():
            return source
        cache = Path(os.path.expanduser(options.get("cache_dir") or DEFAULT_CACHE_DIR))
        try:
            return cached_conversion(source, cache)
        except ConversionError as exc:
            raise EngineError(str(exc)) from None
        except OSError as exc:
            raise EngineError(f"cannot convert {source} for MLX into {cache}: {exc}") from None


def _template(value: str) -> str:
    if "{%" in value or "{{" in value:
        return value
    if value == "chatml":
        return CHATML_TEMPLATE
    raise EngineError(f"chat_template {value!r}: give a Jinja template, or 'chatml'")


class MLXModel:
    parallel = 1
    schema_output = False  # mlx-lm has no grammar sampling

    def __init__(
        self,
        spec: ModelSpec,
        info: GGUFInfo,
        model: Any,
        tokenizer: Any,
        draft: Any,
        generation: dict[str, Any],
        mx: Any,
        mlx_lm: Any,
        sampling: Any,
    ) -> None:
        self._spec = spec
        self._context = spec.context_size(info)
        self._model: Any = model
        self._tokenizer: Any = tokenizer
        self._draft = draft
        self._generation = generation
        self._mx, self._mlx_lm, self._sampling = mx, mlx_lm, sampling
        self.tools: bool | None = bool(tokenizer.has_tool_calling)  # mlx-lm found the template's call markers

    def chat(self, body: bytes, emit: Emit) -> None:
        on_mlx_thread(lambda: self._chat(body, emit))

    def embed(self, body: bytes, emit: Emit) -> None:
        emit(
            error_payload(
                400,
                "the MLX engine does not serve embeddings: use `type: llama_cpp` for this model",
                "invalid_request_error",
            )
        )

    def _chat(self, body: bytes, emit: Emit) -> None:
        if self._model is None:
            raise EngineError("the model was unloaded")
        try:
            request = decode_request(body)
            prompt = self._prompt(request)
            self._generate(request, prompt, emit)
        except RequestError as exc:
            emit(error_payload(400, str(exc), exc.code, exc.param))
        except RuntimeError as exc:  # MLX reports failures (out of memory...) as RuntimeError
            emit(error_payload(500, f"MLX: {exc}", "server_error"))

    def _prompt(self, request: ChatBody) -> list[int]:
        tokenizer = self._tokenizer
        tools = request.tools if request.tool_choice != "none" and tokenizer.has_tool_calling else None
        try:
            prompt = tokenizer.apply_chat_template(
                template_messages(request.messages), tools=tools, add_generation_prompt=True
            )
        except Exception as exc:  # Jinja raises its own errors for messages a template refuses
            raise RequestError(f"the model's chat template rejected the messages: {exc}", "messages") from None
        if len(prompt) >= self._context:
            # llama-server's words and error type, so clients and routing read both engines alike
            raise RequestError(
                f"the request ({len(prompt)} tokens) exceeds the available context size ({self._context} tokens)",
                "messages",
                code="exceed_context_size_error",
            )
        return list(prompt)

    def _generate(self, request: ChatBody, prompt: list[int], emit: Emit) -> None:
        tokenizer = self._tokenizer
        room = self._context - len(prompt)
        limit = request.max_completion_tokens or request.max_tokens or room
        tools_on = bool(request.tools) and request.tool_choice != "none"
        scanner = TextScanner(request.stops, tokenizer.tool_call_start if tools_on else None)
        reply = Reply(self._spec.name, emit, stream=request.stream, include_usage=request.include_usage)
        sampler, processors = self._sampler(request), self._processors(request)
        if request.seed is not None:
            self._mx.random.seed(request.seed)
        reply.start()
        finish, generated = "length", 0
        for response in self._mlx_lm.stream_generate(
            self._model,
            tokenizer,
            prompt,
            max_tokens=min(limit, room),
            sampler=sampler,
            logits_processors=processors,
            draft_model=self._draft,
            **self._generation,
        ):
            generated = response.generation_tokens
            reply.text(scanner.feed(response.text))
            if reply.cancelled:
                return
            if scanner.stopped:
                finish = "stop"
                break
            if response.finish_reason:
                finish = response.finish_reason
        calls = None
        if scanner.tool_text is not None:
            calls = self._tool_calls(scanner.tool_text, request)
            if calls:
                finish = "tool_calls"
            else:  # nothing parseable: the text is the answer, as the model wrote it
                reply.text(tokenizer.tool_call_start + scanner.tool_text)
        else:
            reply.text(scanner.flush())
        reply.finish(finish, len(prompt), generated, calls)

    def _tool_calls(self, text: str, request: ChatBody) -> list[dict[str, Any]]:
        tokenizer = self._tokenizer
        try:
            return parse_tool_calls(
                text, (tokenizer.tool_call_start, tokenizer.tool_call_end), tokenizer.tool_parser, request.tools
            )
        except RequestError:
            return []

    def _sampler(self, request: ChatBody) -> Any:
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        return self._sampling.make_sampler(
            temp=temperature,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            min_p=DEFAULT_MIN_P if request.min_p is None else request.min_p,
            top_k=DEFAULT_TOP_K if request.top_k is None else request.top_k,
        )

    def _processors(self, request: ChatBody) -> list[Any]:
        try:
            bias = {int(token): value for token, value in (request.logit_bias or {}).items()}
        except ValueError:
            raise RequestError("logit_bias keys are token ids", "logit_bias") from None
        return list(
            self._sampling.make_logits_processors(
                logit_bias=bias or None,
                repetition_penalty=request.repetition_penalty,
                presence_penalty=request.presence_penalty,
                frequency_penalty=request.frequency_penalty,
            )
        )

    def close(self) -> None:
        def free() -> None:
            self._model = self._tokenizer = self._draft = None
            self._mx.clear_cache()

        on_mlx_thread(free)
