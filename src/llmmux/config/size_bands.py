"""Model sizes in billions of parameters, and the `model_size_routing:` bands.

    model_size_routing:
      - size: "< 8B"
        provider: ollama
      - size: "8B - 13B"
        provider: llama_cpp
      - size: "> 13B"
        provider: vllm

A size comes from the registry (`size: 7.6B`) or from the model's name (`llama3.1:8b`,
`kimi-k2:1t-cloud`, `Qwen2.5-Coder-7B-Instruct`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .fields import FieldReader

SECTION = "model_size_routing"
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBtTmM])(?![a-zA-Z])")
_UNITS = {"m": 0.001, "b": 1.0, "t": 1000.0}
_BAND = re.compile(r"^\s*(<=|>=|<|>)?\s*([\d.]+\s*[bBtTmM]?)\s*(?:(?:-|to|–)\s*([\d.]+\s*[bBtTmM]?))?\s*(\+)?\s*$")


def parse_size(text: str | None) -> float | None:
    """Billions of parameters named in `text`: '7.6B' -> 7.6, 'kimi-k2:1t' -> 1000.0."""
    if not text:
        return None
    match = _SIZE.search(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def _amount(text: str) -> float:
    text = text.strip()
    if text[-1:].isalpha():
        return float(text[:-1]) * _UNITS[text[-1].lower()]
    return float(text)


@dataclass(frozen=True, slots=True)
class SizeBand:
    """A range of model sizes (billions, `low` inclusive unless `strict_low`) and its provider."""

    label: str
    low: float
    high: float
    provider: str
    strict_low: bool = False
    strict_high: bool = True

    def contains(self, size: float) -> bool:
        above = size > self.low if self.strict_low else size >= self.low
        below = size < self.high if self.strict_high else size <= self.high
        return above and below


def parse_band(label: str, provider: str) -> SizeBand | None:
    """'< 8B', '<= 8B', '8B - 13B' (inclusive), '> 13B', '13B+'."""
    match = _BAND.match(label)
    if match is None:
        return None
    op, first, second, plus = match.groups()
    try:
        a = _amount(first)
        b = _amount(second) if second else None
    except (ValueError, KeyError):
        return None
    if b is not None:
        return SizeBand(label, a, b, provider, strict_high=False)
    if op in ("<", "<="):
        return SizeBand(label, 0.0, a, provider, strict_high=op == "<")
    if op in (">", ">=") or plus:
        return SizeBand(label, a, math.inf, provider, strict_low=op == ">")
    return SizeBand(label, a, a, provider, strict_high=False)


def band_index(bands: list[SizeBand], size: float | None) -> int | None:
    if size is None:
        return None
    for i, band in enumerate(bands):
        if band.contains(size):
            return i
    return None


def parse_bands(section: Any, reader: FieldReader) -> list[SizeBand]:
    if section is None:
        return []
    if not isinstance(section, list):
        reader.error(SECTION, f"expected a list of {{size, provider}} entries, got {type(section).__name__}")
        return []
    bands = []
    for i, raw in enumerate(section):
        path = f"{SECTION}[{i}]"
        entry = reader.mapping(path, raw)
        if entry is None:
            continue
        reader.unknown(path, entry, ("size", "provider", "description"))
        size, provider = entry.get("size"), entry.get("provider")
        if not isinstance(provider, str) or not provider:
            reader.error(f"{path}.provider", "expected the name of a provider")
            continue
        band = parse_band(str(size), provider) if size is not None else None
        if band is None:
            reader.error(f"{path}.size", f"expected a size range such as '< 8B', '8B - 13B' or '> 13B', got {size!r}")
            continue
        bands.append(band)
    return bands
