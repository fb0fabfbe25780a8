"""The llama-cpp-python engine (optional: it builds llama.cpp from source on install).

A `Llama` object is not thread-safe (one KV cache, one sampler), so each model runs one
request at a time: the pool's slots for it have size 1 and a bounded queue, past which
requests get a 503 with Retry-After. Its chat handlers take OpenAI-style arguments and
return OpenAI-shaped dicts, so this adapter maps arguments and adds what its streams lack
(the usage chunk, counted with the model's own tokenizer).

Tools reach its chat handler as they are: a template from the GGUF renders them, and a
named `tool_choice` constrains the arguments to the tool's schema and comes back as a tool
call (`tool_choice: "required"` with one tool is sent that way). Unnamed calls are parsed
only by handlers that do so (`chat_template: chatml-function-calling`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

import msgspec

from ..bridge import Emit
from ..gguf import GGUFInfo
from .base import EngineError, EngineUnavailable, ModelSpec, error_payload

# Request fields llama-cpp-python's create_chat_completion accepts, as OpenAI names them.
PASSED = (
    "messages",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "stream",
    "stop",
    "seed",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
    "logprobs",
    "top_logprobs",
)
CACHE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30, "iq4_nl": 20}


def _module() -> Any:
    try:
        import llama_cpp  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise EngineUnavailable(
            f"the llama-cpp-python engine is not installed (pip install llama-cpp-python): {exc}"
        ) from None
    return llama_cpp


class LlamaCppPythonEngine:
    name: ClassVar[str] = "llama_cpp_python"

    def __init__(self) -> None:
        self._lib = _module()

    def load(self, spec: ModelSpec, info: GGUFInfo) -> LlamaCppPythonModel:
        kwargs: dict[str, Any] = {
            "model_path": spec.path,
            "n_ctx": spec.context_size(info),
            "use_mmap": spec.mmap,
            "use_mlock": spec.mlock,
            "embedding": spec.embeds(info),
            "verbose": False,
            "n_gpu_layers": -1 if spec.n_gpu_layers is None else spec.n_gpu_layers,
            "type_k": CACHE_TYPES.get(spec.cache_type_k),
            "type_v": CACHE_TYPES.get(spec.cache_type_v),
        }
        if spec.n_threads:
            kwargs["n_threads"] = kwargs["n_threads_batch"] = spec.n_threads
        if spec.n_batch:
            kwargs["n_batch"] = spec.n_batch
        if spec.embeds(info):
            kwargs.update(_embedding_arguments(spec, info))
        if spec.flash_attn is not None:
            kwargs["flash_attn"] = spec.flash_attn
        if spec.chat_template:
            kwargs.update(self._template(spec.chat_template))
        kwargs.update(spec.options)
        try:
            llama = self._lib.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama-cpp-python could not load {spec.path}: {exc}") from None
        return LlamaCppPythonModel(llama, self._lib, _renders_tools(spec, info))

    def _template(self, template: str) -> dict[str, Any]:
        """A named format (`chatml`) or, when it looks like Jinja, a template of our own."""
        if "{%" not in template and "{{" not in template:
            return {"chat_format": template}
        return {"chat_handler": _JinjaHandler(template, self._lib)}


def _renders_tools(spec: ModelSpec, info: GGUFInfo) -> bool | None:
    """False where the file's template plainly ignores tools (it never mentions them); a
    template or format from config is taken on trust."""
    if spec.chat_template:
        return None
    return None if info.chat_template and "tools" in info.chat_template else False


def _embedding_arguments(spec: ModelSpec, info: GGUFInfo) -> dict[str, Any]:
    # An input is embedded in one batch: make that the whole context, as with xllamacpp.
    size = spec.n_batch or spec.context_size(info)
    arguments: dict[str, Any] = {"n_batch": size, "n_ubatch": size}
    pooling = spec.pooling_type(info)
    if pooling is not None:
        arguments["pooling_type"] = pooling
    return arguments


class _JinjaHandler:
    """A chat handler rendering a Jinja template given in config; tokens come from the
    model once it is loaded (llama-cpp-python's formatter needs them up front)."""

    def __init__(self, template: str, lib: Any) -> None:
        self.template = template
        self.lib = lib

    def __call__(self, *, llama: Any, **kwargs: Any) -> Any:
        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = self.lib.llama_chat_format.Jinja2ChatFormatter(
            template=self.template,
            eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        return formatter.to_chat_handler()(llama=llama, **kwargs)


class LlamaCppPythonModel:
    schema_output = True  # response_format with a schema, through its JSON-schema grammar

    def __init__(self, llama: Any, lib: Any, tools: bool | None) -> None:
        self._llama: Any = llama
        self._lib = lib
        self.parallel = 1
        self.tools = tools
        self._prompt_tokens = 0
        tokenize = llama.tokenize

        def counting_tokenize(text: bytes, *args: Any, **kwargs: Any) -> list[int]:
            # The chat handler tokenizes the rendered prompt first: its length is the
            # prompt's token count, which streams do not report.
            tokens: list[int] = tokenize(text, *args, **kwargs)
            if self._prompt_tokens == 0:
                self._prompt_tokens = len(tokens)
            return tokens

        llama.tokenize = counting_tokenize

    def chat(self, body: bytes, emit: Emit) -> None:
        llama = self._llama
        if llama is None:
            raise EngineError("the model was unloaded")
        try:
            request = msgspec.json.decode(body)
            kwargs = self._arguments(request)
            self._prompt_tokens = 0
            result = llama.create_chat_completion(**kwargs)
        except (ValueError, TypeError) as exc:
            emit(error_payload(400, str(exc), "invalid_request_error"))
            return
        except RuntimeError as exc:
            emit(error_payload(500, str(exc), "server_error"))
            return
        if not kwargs.get("stream"):
            emit(msgspec.json.encode(result))
            return
        self._stream(result, emit, bool((request.get("stream_options") or {}).get("include_usage")))

    def _stream(self, chunks: Any, emit: Emit, include_usage: bool) -> None:
        last: dict[str, Any] = {}
        try:
            for chunk in chunks:
                last = chunk
                if emit(msgspec.json.encode(chunk)):
                    return
        finally:
            chunks.close()  # stops generation when the consumer left early
        if include_usage:
            # The context now holds the prompt and every generated token but the last
            # sampled one (evaluated only if generation had gone on); an end-of-turn token
            # is not part of the completion, so only a reply cut by max_tokens adds it back.
            # (A reply cut by a stop string counts one token less than llama-cpp-python's
            # own non-streaming usage.)
            finish = (last.get("choices") or [{}])[0].get("finish_reason")
            completion = max(0, self._llama.n_tokens - self._prompt_tokens + (finish == "length"))
            emit(
                msgspec.json.encode(
                    {
                        "id": last.get("id") or f"chatcmpl-{uuid.uuid4()}",
                        "object": "chat.completion.chunk",
                        "created": last.get("created") or int(time.time()),
                        "model": last.get("model", ""),
                        "choices": [],
                        "usage": {
                            "prompt_tokens": self._prompt_tokens,
                            "completion_tokens": completion,
                            "total_tokens": self._prompt_tokens + completion,
                        },
                    }
                )
            )

    def embed(self, body: bytes, emit: Emit) -> None:
        llama = self._llama
        if llama is None:
            raise EngineError("the model was unloaded")
        try:
            request = msgspec.json.decode(body)
            inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
            if not all(isinstance(text, str) for text in inputs):
                raise ValueError("the llama-cpp-python engine embeds texts, not token arrays")
            # Normalised like llama-server's (and OpenAI's) vectors; an input longer than a
            # batch is an error, as there, rather than silently cut short.
            vectors, tokens = llama.embed(inputs, normalize=True, truncate=False, return_count=True)
        except (ValueError, TypeError, KeyError) as exc:
            emit(error_payload(400, str(exc), "invalid_request_error"))
            return
        except RuntimeError as exc:
            emit(error_payload(500, str(exc), "server_error"))
            return
        emit(
            msgspec.json.encode(
                {
                    "object": "list",
                    "model": request.get("model", ""),
                    "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        )

    def _arguments(self, request: dict[str, Any]) -> dict[str, Any]:
        kwargs = {key: request[key] for key in PASSED if request.get(key) is not None}
        tools = kwargs.get("tools")
        if kwargs.get("tool_choice") == "required" and isinstance(tools, list) and len(tools) == 1:
            # Its handlers force a call only when it is named: with one tool, that is the same.
            kwargs["tool_choice"] = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
        if request.get("max_completion_tokens") is not None:
            kwargs["max_tokens"] = request["max_completion_tokens"]
        response_format = request.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        elif response_format is not None:
            kwargs["response_format"] = response_format
        if isinstance(request.get("grammar"), str):
            kwargs["grammar"] = self._lib.LlamaGrammar.from_string(request["grammar"], verbose=False)
        if isinstance(request.get("logit_bias"), dict):
            kwargs["logit_bias"] = {int(k): float(v) for k, v in request["logit_bias"].items()}
        return kwargs

    def close(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()
