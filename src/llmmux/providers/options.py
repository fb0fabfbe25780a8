"""The options a provider type reads from its config entry, declared as typed fields.

Every key of a provider entry beyond the common ones (`base_url`, `api_key`, `models`, ...)
is an option of its type. A provider class names its options as a frozen dataclass
(`options_type`), a subclass of `ProviderOptions`; `from_mapping` reads an entry's keys into
it by each field's type, with the config's one field reader, so a wrong value is reported
with its key path and what was expected, and the default is kept:

    @dataclass(frozen=True, slots=True)
    class AnthropicOptions(ProviderOptions):
        default_max_tokens: Annotated[int, AtLeast(1)] = DEFAULT_MAX_TOKENS

Validation calls `from_mapping` once with the loader's reader (problems become config
errors) and leaves the result on `ProviderConfig.options`, where the provider finds it; a
provider built from a config that skipped validation reads its options itself, keeping the
problems for `validate_config`. The reading
is generic (bool, int with a minimum, str, Literal choices, string lists, mappings), so the
config loader can swap in another reader with the same methods.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from .. import forwarding
from ..config.fields import FieldReader
from ..config.model import TypedOptions
from ..config.problems import Problems


@dataclass(frozen=True, slots=True)
class AtLeast:
    """`Annotated[int, AtLeast(1)]`: an integer option's smallest allowed value."""

    minimum: int


@dataclass(frozen=True, slots=True)
class AsText:
    """`Annotated[str, AS_TEXT]`: a scalar read as its text, for values YAML may read as a
    number or a date (`api_version: 2024-10-21`)."""


AS_TEXT = AsText()


@dataclass(frozen=True, slots=True)
class ProviderOptions(TypedOptions):
    """The options every provider type reads."""

    embedding_batch_size: Annotated[int, AtLeast(1)] | None = None
    """The most inputs one upstream embeddings call takes; None: no limit."""
    forward_headers: tuple[str, ...] = ()
    """Client headers passed on to the upstream as the client sent them (see `llmmux.forwarding`)."""

    @classmethod
    def keys(cls) -> frozenset[str]:
        """The config keys this type reads."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], reader: FieldReader, path: str) -> Self:
        """The options in `entry` (a provider's config keys); each wrong value is reported to
        `reader` under `path.key` and left at its default."""
        values: dict[str, Any] = {}
        for name, read in _readers(cls).items():
            raw = entry.get(name)
            if raw is not None and raw != "":  # an empty value (an unset `${VAR}`) is no value
                value = read(reader, f"{path}.{name}" if path else name, raw)
                if value is not None:
                    values[name] = value
        options = cls(**values)
        for key, message in options.problems():
            reader.error(f"{path}.{key}" if path else key, message)
        return options

    @classmethod
    def from_config(cls, extra: Mapping[str, Any], source: str = "<provider>") -> tuple[Self, list[str]]:
        """The options in a provider's `extra` keys, and what is wrong with them as sentences."""
        found = Problems()
        options = cls.from_mapping(extra, FieldReader(source, found), "")
        return options, [f"{p.path}: {p.message}" for p in found]

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong across fields, as (key, message); a subclass adds its own."""
        barred = forwarding.barred(self.forward_headers)
        if barred:
            return [(forwarding.CONFIG_KEY, f"cannot pass on {', '.join(barred)}: credentials and framing never pass")]
        return []


Read = Callable[[FieldReader, str, Any], Any]


_READERS: dict[type[ProviderOptions], dict[str, Read]] = {}


def _readers(cls: type[ProviderOptions]) -> dict[str, Read]:
    """Each field's reader, worked out once per class from its type hints."""
    found = _READERS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        found = _READERS[cls] = {f.name: _reader_for(hints[f.name]) for f in dataclasses.fields(cls)}
    return found


def _reader_for(hint: Any) -> Read:
    """How to read one value of type `hint` (None, the field's default, is never read)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _reader_for(inner)
    if origin is Annotated and AS_TEXT in args[1:]:
        return _text
    if origin is Annotated:
        minimum = next((a.minimum for a in args[1:] if isinstance(a, AtLeast)), 0)
        return lambda reader, path, value: reader.integer(path, value, minimum=minimum)
    if origin is Literal:
        return lambda reader, path, value: _choice(reader, path, value, args)
    if hint is bool:
        return FieldReader.boolean
    if hint is int:
        return FieldReader.integer
    if hint is str:
        return FieldReader.string
    if origin is tuple:
        return _names
    if origin is dict and args == (str, str):
        return _string_map
    if origin is dict:
        return FieldReader.mapping
    raise TypeError(f"no reader for provider options of type {hint!r}")


def _text(reader: FieldReader, path: str, value: Any) -> str | None:
    if isinstance(value, str | int | float | datetime.date) and not isinstance(value, bool):
        return str(value)
    reader.error(path, f"expected a string, got {value!r}")
    return None


def _choice(reader: FieldReader, path: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if value in choices:
        return value
    reader.error(path, f"expected one of {', '.join(map(str, choices))}, got {value!r}")
    return None


def _names(reader: FieldReader, path: str, value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    reader.error(path, f"expected a list of names, got {value!r}")
    return None


def _string_map(reader: FieldReader, path: str, value: Any) -> dict[str, str] | None:
    found = reader.mapping(path, value)
    return None if found is None else {str(k): str(v) for k, v in found.items()}
