"""`type: mlx` for real: mlx and mlx-lm's CPU build on the generated GGUF model (converted
for MLX by llmmux) and on SmolLM2, through the router and the official `openai` SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmmux.config.model import Config, ProviderConfig
from llmmux.loading import check
from llmmux.local.engines.chat_frames import TextScanner, parse_tool_calls
from llmmux.local.engines.mlx import import_mlx
from llmmux.local.gguf import read_info
from llmmux.local.gguf_to_mlx import cached_conversion
from llmmux.local.mlx_folder import describe
from llmmux.router import Router
from llmmux.server.app import App
from local.serving import serving

HELLO = [{"role": "user", "content": "hello"}]
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    'Call a tool as <tool_call>{"name": ..., "arguments": ...}</tool_call> '
    "(the call's tool_call.name must be one of the above)<|im_end|>\n{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def mlx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlx-cache")


@pytest.fixture(scope="module")
def tiny_folder(tiny_gguf: Path, mlx_cache: Path) -> Path:
    return cached_conversion(tiny_gguf, mlx_cache)


def mlx_config(mlx_cache: Path, *models: dict[str, Any], **provider: Any) -> dict[str, Any]:
    return {"providers": {"mlx": {"type": "mlx", "cache_dir": str(mlx_cache), "models": list(models), **provider}}}


def test_a_gguf_file_converts_to_an_mlx_folder_once(tiny_gguf: Path, mlx_cache: Path, tiny_folder: Path) -> None:
    gguf, folder = read_info(tiny_gguf), describe(tiny_folder)
    assert (folder.block_count, folder.embedding_length, folder.head_count, folder.head_count_kv) == (
        gguf.block_count,
        gguf.embedding_length,
        gguf.head_count,
        gguf.head_count_kv,
    )
    assert folder.context_length == gguf.context_length
    assert folder.parameters == gguf.parameters
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["rope_traditional"] is True
    written = (tiny_folder / "model.safetensors").stat().st_mtime_ns
    assert cached_conversion(tiny_gguf, mlx_cache) == tiny_folder
    assert (tiny_folder / "model.safetensors").stat().st_mtime_ns == written


async def test_gguf_and_folder_sources_generate_the_same_greedy_words(
    tiny_gguf: Path, tiny_folder: Path, mlx_cache: Path
) -> None:
    config = mlx_config(
        mlx_cache, {"name": "from-gguf", "path": str(tiny_gguf)}, {"name": "from-folder", "path": str(tiny_folder)}
    )
    async with Router.from_config(config) as router:
        first = await router.chat(model="from-gguf", messages=HELLO, temperature=0, max_tokens=6)
        second = await router.chat(model="from-folder", messages=HELLO, temperature=0, max_tokens=6)
        chunks = [c async for c in router.stream(model="from-folder", messages=HELLO, temperature=0, max_tokens=6)]
        rows = {row["model"]: row for row in router.providers["mlx"].runtime_status()}  # type: ignore[attr-defined]
    text = first.response.choices[0].message.content
    assert text and len(text.split()) == 6
    assert second.response.choices[0].message.content == text
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert first.response.choices[0].finish_reason == "length"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6 and usage.prompt_tokens > 20
    assert rows["from-folder"]["engine"] == "mlx" and rows["from-folder"]["state"] == "ready"
    assert rows["from-folder"]["family"] == "llama"


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, mlx_cache: Path) -> Iterator[str]:
    config = mlx_config(
        mlx_cache,
        {"name": "tiny", "path": str(tiny_gguf), "n_ctx": 64},
        {"name": "tiny-wide", "path": str(tiny_gguf)},
        {"name": "tiny-tools", "path": str(tiny_gguf), "chat_template": TOOLS_TEMPLATE},
    )
    with serving(App(Router.from_config(config))) as base:
        yield base


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server + "/v1", api_key="x", max_retries=0) as client:
        yield client


def test_the_openai_sdk_chats_and_streams_with_an_mlx_model(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0, max_tokens=5)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="tiny",
        messages=HELLO,
        temperature=0,
        max_tokens=5,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert done.model == "tiny" and done.choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == done.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert done.usage is not None and done.usage.prompt_tokens == chunks[-1].usage.prompt_tokens


def test_a_stop_sequence_ends_the_reply_before_it(client: openai.OpenAI) -> None:
    words = (
        client.chat.completions.create(
            model="tiny",
            messages=HELLO,
            temperature=0,  # type: ignore[arg-type]
            max_tokens=6,
        )
        .choices[0]
        .message.content
    )
    assert words is not None
    stop = words.split()[2]
    for stream in (False, True):
        reply = client.chat.completions.create(
            model="tiny",
            messages=HELLO,
            temperature=0,
            max_tokens=6,  # type: ignore[arg-type]
            stop=[stop],
            stream=stream,
        )
        if stream:
            chunks = list(reply)  # type: ignore[arg-type]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        else:
            text, finish = reply.choices[0].message.content, [reply.choices[0].finish_reason]  # type: ignore[union-attr]
        assert text == words[: words.index(stop)]
        assert finish == ["stop"]


def test_what_the_engine_cannot_do_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model="tiny",
            messages=HELLO,
            max_tokens=2,  # type: ignore[arg-type]
            response_format={"type": "json_object"},
        )
    assert error.value.body["param"] == "response_format"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "sky " * 80}])
    assert error.value.code == "context_length_exceeded"  # OpenAI's code, not llama-server's type
    assert "exceeds the available context size" in error.value.body["message"]  # type: ignore[index]


def test_a_template_without_tool_calls_gets_the_built_in_one(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="tiny-wide", messages=HELLO, max_tokens=1)  # type: ignore[arg-type]
    tools = client.chat.completions.create(model="tiny-wide", messages=HELLO, tools=[WEATHER], max_tokens=1)  # type: ignore[arg-type,list-item]
    assert plain.usage is not None and tools.usage is not None
    assert tools.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # written into the prompt, not refused


def test_n_is_dropped_and_said_so(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="tiny", messages=HELLO, max_tokens=2, n=2)  # type: ignore[arg-type]
    assert raw.headers["x-llmmux-dropped-params"] == "n"
    assert len(raw.parse().choices) == 1


def test_a_template_with_tool_calls_renders_the_tools_into_the_prompt(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="tiny-tools", messages=HELLO, max_tokens=1)  # type: ignore[arg-type]
    tools = client.chat.completions.create(
        model="tiny-tools",
        messages=HELLO,
        max_tokens=1,  # type: ignore[arg-type]
        tools=[WEATHER],
    )  # type: ignore[list-item]
    assert plain.usage is not None and tools.usage is not None
    assert tools.usage.prompt_tokens > plain.usage.prompt_tokens + 50  # the tool's JSON schema is in the prompt
    follow_up = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answer = client.chat.completions.create(
        model="tiny-tools",
        messages=follow_up,
        max_tokens=1,  # type: ignore[arg-type]
        temperature=0,
        tools=[WEATHER],
    )  # type: ignore[list-item]
    # Random weights: whether the one token is end-of-text depends on the CPU's float rounding.
    assert answer.choices[0].finish_reason in {"length", "stop"}
    assert answer.usage is not None
    # The assistant's call and the tool's answer are rendered, not dropped (content None would raise)
    assert answer.usage.prompt_tokens > tools.usage.prompt_tokens + 20


def test_importing_mlx_lm_leaves_the_open_file_limit_alone() -> None:
    # In a fresh process: here mlx-lm may already be imported. mlx-lm itself sets (2048, 4096).
    script = (
        "import resource; before = resource.getrlimit(resource.RLIMIT_NOFILE); "
        "from llmmux.local.engines.mlx import import_mlx; import_mlx(); "
        "print(before == resource.getrlimit(resource.RLIMIT_NOFILE), before)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("True"), out.stdout


def test_tool_calls_are_cut_out_of_streamed_text_and_parsed() -> None:
    import_mlx()  # imports mlx-lm the way the engine does
    from mlx_lm.tool_parsers import json_tools

    scanner = TextScanner(["STOP"], "<tool_call>")
    pieces = [
        "Let me check",
        " <tool",
        "_call>",
        '{"name": "get_weather", ',
        '"arguments": {"city": "Paris"}}',
        "</tool_call>",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
    ]
    sent = "".join(scanner.feed(piece) for piece in pieces)
    assert sent == "Let me check "
    assert scanner.tool_text is not None
    calls = parse_tool_calls(scanner.tool_text, ("<tool_call>", "</tool_call>"), json_tools.parse_tool_call, [WEATHER])
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)


def test_text_that_may_begin_a_stop_sequence_is_held_back_until_it_cannot() -> None:
    scanner = TextScanner(["the end"], None)
    assert scanner.feed("so the e") == "so "
    assert scanner.feed("arth") == "the ear"  # "th" may begin "the end"
    assert scanner.feed(" and the end of it") == "th and "
    assert scanner.stopped and scanner.feed("more") == ""


def test_mlx_options_are_checked(tmp_path: Path) -> None:
    entry = ProviderConfig(name="mlx", type="mlx", extra={"kv_bits": "eight", "cache_dir": str(tmp_path)}, models=[])
    assert entry_problems(Config(providers={"mlx": entry}), "mlx") == [
        ("kv_bits", "expected a positive integer, got 'eight'")
    ]
    llama = ProviderConfig(name="local", type="llama_cpp", extra={"kv_bits": 8, "models_dir": str(tmp_path)})
    assert entry_problems(Config(providers={"local": llama}), "local") == [
        ("kv_bits", "is an MLX option: it needs `type: mlx` or `engine: mlx`")
    ]


def test_smollm2_answers_through_mlx(smollm2_path: Path, mlx_cache: Path) -> None:
    config = mlx_config(mlx_cache, {"name": "smollm2-mlx", "path": str(smollm2_path), "n_ctx": 512})
    with serving(App(Router.from_config(config))) as base, openai.OpenAI(base_url=base + "/v1", api_key="x") as client:
        done = client.chat.completions.create(
            model="smollm2-mlx",
            temperature=0,
            max_tokens=10,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
    assert "Paris" in (done.choices[0].message.content or "")
    assert done.usage is not None and done.usage.prompt_tokens > 20


def entry_problems(config: Config, name: str) -> list[tuple[str, str]]:
    """The errors validation finds in provider `name`'s entry, as (key path below it, message)."""
    prefix = f"providers.{name}."
    errors = check(config).problems.errors
    return [(p.path.removeprefix(prefix), p.message) for p in errors if p.path.startswith(prefix)]
