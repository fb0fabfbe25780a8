"""The `model` label of a finished request: bounded, whatever names clients send.

Every distinct label value is a time series on every scrape, kept for the life of the
process. A name that routes nowhere (a typo, a scan, an attack with 5,000 random names)
counts under one `(unrouted)` value; names that do route get their own value up to
`MAX_MODEL_LABELS` of them (a pattern route can route unboundedly many), then `(other)`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..events import RequestRecord

UNROUTED = "(unrouted)"
OTHER = "(other)"
MAX_MODEL_LABELS = 1000


class ModelLabels:
    """`label(record)` for the metrics; `routable(name)` says whether a configured route has that name.

    >>> labels = ModelLabels(routable=lambda name: name == "chat", limit=1)
    >>> labels.name("chat", reached=False), labels.name("typo", reached=False), labels.name("pat/x", reached=True)
    ('chat', '(unrouted)', '(other)')
    """

    __slots__ = ("_seen", "limit", "routable")

    def __init__(self, routable: Callable[[str], bool] | None = None, limit: int = MAX_MODEL_LABELS) -> None:
        self.routable = routable
        self.limit = limit
        self._seen: set[str] = set()

    def label(self, record: RequestRecord) -> str:
        return self.name(record.public_model, reached=record.provider is not None or bool(record.attempts))

    def name(self, model: str, *, reached: bool) -> str:
        """`reached`: the request got as far as a candidate, so its name routes."""
        if model in self._seen:
            return model
        if not reached and (self.routable is None or not self.routable(model)):
            return UNROUTED
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(model)
        return model
