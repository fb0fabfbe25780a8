"""A config folder spreads entries over several files: every error names the file its key is in.

Each case writes a valid folder (providers.yaml, model-mappings.yaml, llmmux.yaml) with one
bad key in one of them, loads it as `llmmux serve`, `llmmux validate` and reload do, and
asserts the error names that file (not the folder), the key path and what was expected.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmmux.loading import load
from llmmux.shared.instances import config_hash

PROVIDERS = {
    "up": {
        "type": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "models": [{"name": "m"}],
    },
}
MAPPINGS = {
    "exact_matches": {"fast": {"provider": "up", "model": "m"}},
    "patterns": [{"pattern": "^m-", "provider": "up"}],
}


def _local(**model: Any) -> dict[str, Any]:
    """An in-process provider whose one model carries `model`'s settings."""
    return {"type": "llama_cpp", "models": [{"name": "q", "path": "{gguf}", **model}]}


# (id, file the bad key goes in, the fragment merged into that file, key path, words of what was expected)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("local model option", "providers.yaml", {"providers": {"loc": _local(n_ctx="big")}}, "providers.loc.models.q.n_ctx", "integer"),
    ("local provider option", "providers.yaml", {"providers": {"loc": {**_local(), "max_loaded_models": 0}}}, "providers.loc.max_loaded_models", "positive integer"),
    ("models folder", "providers.yaml", {"providers": {"loc": {"type": "llama_cpp", "models_dir": "{folder}/none"}}}, "providers.loc.models", "no models"),
    ("type option", "providers.yaml", {"providers": {"ant": {"type": "anthropic", "api_key": "k", "default_max_tokens": 0}}}, "providers.ant.default_max_tokens", "positive integer"),
    ("base url", "providers.yaml", {"providers": {"bad": {"type": "openai_compatible", "base_url": "ftp://x"}}}, "providers.bad.base_url", "http(s) URL"),
    ("launch on in-process type", "providers.yaml", {"providers": {"loc": {**_local(), "launch": {"command": ["x"]}}}}, "providers.loc.launch", "managed server"),
    ("pricing override", "providers.yaml", {"providers": {"up": {**PROVIDERS["up"], "models": [{"name": "m", "pricing": {"inptu": 1}}]}}}, "providers.up.models[0].pricing", "unknown price key"),
    ("exact route", "model-mappings.yaml", {"exact_matches": {"slow": {"provider": "nowhere"}}}, "exact_matches.slow.provider", "unknown provider"),
    ("pattern", "model-mappings.yaml", {"patterns": [{"pattern": "gpt-(", "provider": "up"}]}, "patterns[0].pattern", "regular expression"),
    ("fallback chain", "model-mappings.yaml", {"fallback_chains": {"c": {"chain": ["up", "ghost"]}}}, "fallback_chains.c.chain[1]", "not a provider"),
    ("fallback cycle", "model-mappings.yaml", {"exact_matches": {"a": {"provider": "up", "fallback": ["b"]}, "b": {"provider": "up", "fallback": ["a"]}}}, "exact_matches.a.fallback", "cycle"),
    ("capability group", "llmmux.yaml", {"capabilities": {"vision": {"provider": "ghost"}}}, "capabilities.vision.provider", "unknown provider"),
    ("redundant group", "llmmux.yaml", {"redundant_models": {"r": {"providers": [{"provider": "ghost", "model": "m"}]}}}, "redundant_models.r.providers[0].provider", "unknown provider"),
    ("size band", "llmmux.yaml", {"model_size_routing": [{"size": "< 8B", "provider": "ghost"}]}, "model_size_routing[0].provider", "unknown provider"),
    ("tag route target", "llmmux.yaml", {"tag_routes": [{"tag": "batch", "to": "ghost"}]}, "tag_routes[0].to", "not a route"),
    ("route under routing:", "llmmux.yaml", {"routing": {"exact_matches": {"slow": {"provider": "nowhere"}}}}, "routing.exact_matches.slow.provider", "unknown provider"),
    ("cycle under routing:", "llmmux.yaml", {"routing": {"exact_matches": {"a": {"provider": "up", "fallback": ["a"]}}}}, "routing.exact_matches.a.fallback", "cycle"),
    ("second file's pattern", "llmmux.yaml", {"routing": {"patterns": [{"pattern": "x", "provider": "ghost"}]}}, "routing.patterns[0].provider", "unknown provider"),
    ("group under routing:", "llmmux.yaml", {"routing": {"capabilities": {"vision": {"provider": "ghost"}}}}, "routing.capabilities.vision.provider", "unknown provider"),
    ("tag route tag", "llmmux.yaml", {"tag_routes": [{"tag": "no spaces allowed", "to": "fast"}]}, "tag_routes[0].tag", "tag"),
]  # fmt: skip


def _write(folder: Path, file: str, fragment: dict[str, Any]) -> None:
    docs: dict[str, dict[str, Any]] = {
        "providers.yaml": {"providers": copy.deepcopy(PROVIDERS)},
        "model-mappings.yaml": copy.deepcopy(MAPPINGS),
        "llmmux.yaml": {},
    }
    for key, value in fragment.items():
        target = docs[file].setdefault(key, {})
        if isinstance(value, dict) and isinstance(target, dict):
            target.update(value)
        else:
            docs[file][key] = value
    (folder / "q.gguf").write_bytes(b"GGUF")
    for name, doc in docs.items():
        text = yaml.safe_dump(doc).replace("'{gguf}'", str(folder / "q.gguf")).replace("{folder}", str(folder))
        (folder / name).write_text(text)


@pytest.mark.parametrize(("file", "fragment", "key", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_error_names_the_file_its_key_is_in(
    tmp_path: Path, file: str, fragment: dict[str, Any], key: str, expected: str
) -> None:
    _write(tmp_path, file, fragment)
    errors = load(tmp_path).problems.errors
    at_key = [p for p in errors if p.path == key]
    assert at_key, f"no error at {key}: {[str(p) for p in errors]}"
    assert all(p.file == str(tmp_path / file) for p in at_key), [str(p) for p in at_key]
    assert any(expected in p.message for p in at_key), [str(p) for p in at_key]
    assert str(at_key[0]).startswith(f"error: {tmp_path / file}: {key}: ")


def test_the_valid_folder_has_no_errors(tmp_path: Path) -> None:
    """The cases' base is valid, so each case's error is the bad key's own."""
    _write(tmp_path, "llmmux.yaml", {})
    assert load(tmp_path).problems.errors == []


def test_an_unset_environment_variable_is_named_in_the_file_that_references_it(tmp_path: Path) -> None:
    _write(tmp_path, "providers.yaml", {"providers": {"g": {**PROVIDERS["up"], "api_key": "${UNSET_KEY_FOR_TEST}"}}})
    warnings = [p for p in load(tmp_path, env={}).problems if "UNSET_KEY_FOR_TEST" in p.message]
    assert [(p.severity, p.file) for p in warnings] == [("warning", str(tmp_path / "providers.yaml"))]


def test_where_the_files_lie_is_not_config_drift(tmp_path: Path) -> None:
    """Two instances with the same files in different folders run the same config."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _write(tmp_path / name, "llmmux.yaml", {})
    a, b = (load(tmp_path / name).config for name in ("a", "b"))
    assert a.origins != b.origins
    assert config_hash(a) == config_hash(b)
