"""Tag routes: requests carrying a tag go to another route, e.g. `batch` work to the cheaper tier.

    tag_routes:
      - tag: batch
        to: cheap            # any public name: a route, a redundant group, capability:NAME
        models: ["gpt-4o*"]  # optional: only requests for these names (globs); default every one

Rules are tried in order; the first whose tag the request carries and whose `models` match
the name it asked for wins. Its target is resolved like a requested name, so every routing
feature (fallbacks, strategies, health) applies to it. Untagged requests never look here.
A tag's spelling is checked by `llmmux.loading` (the tag alphabet is `llmmux.tags`'), its
target by `config/validate.py`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .fields import FieldReader

SECTION = "tag_routes"
KEYS = ("tag", "to", "models")


@dataclass(frozen=True, slots=True)
class TagRoute:
    tag: str
    to: str
    models: tuple[str, ...] = ()

    def matches(self, tags: tuple[str, ...], model: str) -> bool:
        return self.tag in tags and (not self.models or any(fnmatch.fnmatchcase(model, m) for m in self.models))


def parse_tag_routes(value: Any, reader: FieldReader) -> tuple[TagRoute, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.error(SECTION, f"expected a list of {{tag, to}} rules, got {type(value).__name__}")
        return ()
    rules = []
    for i, raw in enumerate(value):
        path = f"{SECTION}[{i}]"
        entry = reader.mapping(path, raw)
        if entry is None:
            continue
        reader.unknown(path, entry, KEYS)
        tag, to = reader.string(f"{path}.tag", entry.get("tag")), reader.string(f"{path}.to", entry.get("to"))
        models = reader.strings(f"{path}.models", entry["models"]) if "models" in entry else []
        if tag is None or to is None or models is None:
            continue
        rules.append(TagRoute(tag, to, tuple(models)))
    return tuple(rules)


def tag_target(rules: Sequence[TagRoute], tags: tuple[str, ...], model: str) -> TagRoute | None:
    """The first rule for this request, if any."""
    if tags:
        for rule in rules:
            if rule.matches(tags, model):
                return rule
    return None
