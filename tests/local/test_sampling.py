"""A local model's sampling defaults and loop guard settings: read from config (with clear
errors), and added to a request only where the client set nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmmux.config.loader import provider_config
from llmmux.config.model import Config
from llmmux.loading import check
from llmmux.local.catalog import LocalConfigError, settings_from_config
from llmmux.local.repetition import LoopGuard
from llmmux.local.sampling import with_sampling
from llmmux.types import ChatRequest
from llmmux.wire import openai as openai_wire
from llmmux.wire.anthropic.request_in import decode_chat_request as anthropic_request

DEFAULTS = {"repeat_penalty": 1.1, "temperature": 0.3, "dry_multiplier": 0.8, "top_k": 20}
HI = [{"role": "user", "content": "hi"}]


def body_for(request: ChatRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    encoded = openai_wire.encode_chat_request(request, "smol", stream=False)
    decoded: dict[str, Any] = json.loads(with_sampling(encoded, request, defaults))
    return decoded


def test_defaults_fill_only_what_an_openai_client_left_unset() -> None:
    request = openai_wire.decode_chat_request(
        {"model": "smol", "messages": HI, "temperature": 1.0, "repeat_penalty": 1.0}
    )
    body = body_for(request, DEFAULTS)
    assert body["temperature"] == 1.0 and body["repeat_penalty"] == 1.0  # the client's
    assert body["dry_multiplier"] == 0.8 and body["top_k"] == 20  # the model's
    assert body["messages"] == HI


def test_defaults_fill_only_what_an_anthropic_client_left_unset() -> None:
    request = anthropic_request({"model": "smol", "max_tokens": 50, "messages": HI, "top_k": 5})
    body = body_for(request, DEFAULTS)
    assert body["top_k"] == 5
    assert (body["temperature"], body["repeat_penalty"], body["dry_multiplier"]) == (0.3, 1.1, 0.8)


def test_no_defaults_leave_the_body_as_it_was() -> None:
    request = openai_wire.decode_chat_request({"model": "smol", "messages": HI})
    encoded = openai_wire.encode_chat_request(request, "smol", stream=False)
    assert with_sampling(encoded, request, {}) is encoded
    everything_set = openai_wire.decode_chat_request({"model": "smol", "messages": HI, "temperature": 0})
    encoded = openai_wire.encode_chat_request(everything_set, "smol", stream=False)
    assert with_sampling(encoded, everything_set, {"temperature": 0.5}) is encoded


def local_config(model: dict[str, Any], **provider: Any) -> Any:
    entry = {"type": "llama_cpp", "models": [{"name": "smol", "path": "/models/smol.gguf", **model}], **provider}
    return provider_config("local", entry)


def test_sampling_and_loop_guard_are_read_per_model_over_the_providers() -> None:
    config = local_config(
        {"sampling": {"repeat_penalty": 1.2, "dry_sequence_breakers": ["\n"]}, "loop_guard": {"repeats": 3}},
        sampling={"repeat_penalty": 1.05, "top_k": 20},
    )
    spec = settings_from_config(config).models["smol"]
    assert spec.sampling == {"repeat_penalty": 1.2, "top_k": 20, "dry_sequence_breakers": ["\n"]}
    assert spec.loop_guard == LoopGuard(repeats=3)


def test_the_loop_guard_is_on_by_default_and_can_be_turned_off() -> None:
    assert settings_from_config(local_config({})).models["smol"].loop_guard == LoopGuard()
    assert settings_from_config(local_config({"loop_guard": True})).models["smol"].loop_guard == LoopGuard()
    assert settings_from_config(local_config({"loop_guard": False})).models["smol"].loop_guard is None
    assert settings_from_config(local_config({}, loop_guard=False)).models["smol"].loop_guard is None
    assert settings_from_config(local_config({})).models["smol"].sampling == {}


@pytest.mark.parametrize(
    ("model", "where", "says"),
    [
        ({"sampling": {"repeat_penalti": 1.1}}, "models.smol.sampling.repeat_penalti", "unknown sampling field"),
        ({"sampling": {"top_k": 2.5}}, "models.smol.sampling.top_k", "expected a number"),
        ({"sampling": {"temperature": "hot"}}, "models.smol.sampling.temperature", "got 'hot'"),
        ({"sampling": {"dry_sequence_breakers": "\n"}}, "models.smol.sampling.dry_sequence_breakers", "a list"),
        ({"sampling": [1.1]}, "models.smol.sampling", "expected a mapping"),
        ({"loop_guard": {"repeats": 1}}, "models.smol.loop_guard.repeats", "an integer >= 2"),
        ({"loop_guard": {"copies": 3}}, "models.smol.loop_guard.copies", "unknown loop_guard field"),
        ({"loop_guard": "on"}, "models.smol.loop_guard", "expected true, false or a mapping"),
    ],
)
def test_bad_settings_name_the_key_and_what_was_expected(model: dict[str, Any], where: str, says: str) -> None:
    config = local_config(model)
    problems = entry_problems(Config(providers={config.name: config}), config.name)
    assert any(path == where and says in message for path, message in problems), problems
    with pytest.raises(LocalConfigError):
        settings_from_config(local_config(model))


def test_mlx_takes_its_own_sampling_names(tmp_path: Path) -> None:
    entry = {"type": "mlx", "models": [{"name": "m", "path": str(tmp_path), "sampling": {"repetition_penalty": 1.1}}]}
    config = provider_config("mlx", entry)
    assert settings_from_config(config, "mlx").models["m"].sampling == {"repetition_penalty": 1.1}
    entry["models"][0]["sampling"] = {"repeat_penalty": 1.1}  # llama.cpp's name
    config = provider_config("mlx", entry)
    with pytest.raises(LocalConfigError, match="unknown sampling field; known: frequency_penalty"):
        settings_from_config(config, "mlx")


def entry_problems(config: Config, name: str) -> list[tuple[str, str]]:
    """The errors validation finds in provider `name`'s entry, as (key path below it, message)."""
    prefix = f"providers.{name}."
    errors = check(config).problems.errors
    return [(p.path.removeprefix(prefix), p.message) for p in errors if p.path.startswith(prefix)]
