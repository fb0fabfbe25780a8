"""Token estimates, the complexity heuristic, model sizes and prices."""

from __future__ import annotations

import math

import pytest

from llmmux.config.fields import FieldReader
from llmmux.config.problems import Problems
from llmmux.config.size_bands import band_index, parse_band, parse_bands, parse_size
from llmmux.routing.complexity import HIGH, LOW, MEDIUM, assess
from llmmux.routing.tokens import estimate_prompt_tokens, text_tokens
from llmmux.types import ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall


def request(text: str, **kw: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content=text)], **kw)  # type: ignore[arg-type]


def test_text_tokens_four_ascii_characters_or_one_wide_character_each() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1 and text_tokens("abcde") == 2
    assert text_tokens("日本語のテキスト") == 8
    assert text_tokens("héllo wörld") == 4  # accents cost a little more than ASCII


def test_prompt_estimate_counts_framing_parts_images_tool_calls_and_tools() -> None:
    plain = estimate_prompt_tokens(request("x" * 400))
    assert plain == 3 + 4 + 100
    rich = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user", content=[TextPart("x" * 40), ImagePart(url="data:,", detail="low"), ImagePart(url="u")]
            ),
            Message(role="assistant", tool_calls=[ToolCall(id="1", name="look", arguments='{"q": "abcdefgh"}')]),
        ],
        tools=[Tool(name="look", description="d" * 40, parameters={"type": "object"})],
    )
    assert estimate_prompt_tokens(rich) == 3 + (4 + 10 + 85 + 765) + (4 + 1 + 5 + 8) + (8 + 1 + 10 + 4)


def test_estimate_is_within_a_sensible_band_of_a_real_tokenizer_for_english() -> None:
    # 'The quick brown fox...' is 10 tokens in cl100k_base; the estimate must not be wildly off.
    assert 8 <= text_tokens("The quick brown fox jumps over the lazy dog.") <= 13


@pytest.mark.parametrize(
    ("text", "kw", "level"),
    [
        ("hi there", {}, LOW),
        ("Why is the sky blue?", {}, MEDIUM),
        ("```python\nprint(1)\n```\nPlease optimize this step by step", {}, MEDIUM),
        ("def f(x):\n    return x\nProve the algorithm terminates and analyze it " + "word " * 3000, {}, HIGH),
        ("hello", {"tools": [Tool(name="t")]}, MEDIUM),
    ],
)
def test_complexity(text: str, kw: dict[str, object], level: str) -> None:
    req = request(text, **kw)
    assert assess(req, estimate_prompt_tokens(req)).level == level


def test_complexity_reasons_are_reported() -> None:
    req = request("class A:\n  pass\nwhy?")
    result = assess(req, estimate_prompt_tokens(req))
    assert result.reasons == ("code", "reasoning markers") and result.score == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("llama3.1:8b", 8.0),
        ("7.6B", 7.6),
        ("kimi-k2:1t-cloud", 1000.0),
        ("gpt-oss:120b-cloud", 120.0),
        ("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", 7.0),
        ("mythomax-l2-13b-q5_k_m", 13.0),
        ("SmolLM2-135M", 0.135),
        ("gpt-4o-mini", None),
        ("claude-3-opus-20240229", None),
        ("qwen2.5-coder:Q4_K_M", None),
    ],
)
def test_model_sizes_from_names(text: str, size: float | None) -> None:
    assert parse_size(text) == (pytest.approx(size) if size is not None else None)


def test_seed_size_bands() -> None:
    bands = [b for b in (parse_band("< 8B", "ollama"), parse_band("8B - 13B", "new"), parse_band("> 13B", "vllm")) if b]
    assert [band_index(bands, s) for s in (7.6, 8.0, 13.0, 13.5, 1000.0)] == [0, 1, 1, 2, 2]
    assert band_index(bands, None) is None
    plus = parse_band("70B+", "big")
    assert plus is not None and plus.contains(70) and plus.high == math.inf


def test_bad_bands_are_errors() -> None:
    problems = Problems()
    bands = parse_bands(
        [{"size": "huge", "provider": "x"}, {"size": "< 8B"}, {"size": "< 8B", "provider": "p"}],
        FieldReader("f", problems),
    )
    assert [b.provider for b in bands] == ["p"]
    assert [p.path for p in problems.errors] == ["model_size_routing[0].size", "model_size_routing[1].provider"]
