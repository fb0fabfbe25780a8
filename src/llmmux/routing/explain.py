"""Why a request goes where it goes: each routing step, what it dropped or reordered, the final order.

`llmmux route` prints it; with `routing_strategy.debug_header: true` every response carries
a one-line form in `x-llmmux-route`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .table import Candidate, Route

HEADER_LIMIT = 2048  # well under the 4-8 KB response header buffers of common proxies
REASON_LIMIT = 60


@dataclass(slots=True)
class Step:
    """One routing step: what it did, and the candidates it dropped with why."""

    name: str
    detail: str
    dropped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Explanation:
    route: Route
    steps: list[Step] = field(default_factory=list)
    final: list[Candidate] = field(default_factory=list)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def step(self, name: str, detail: str, dropped: list[tuple[str, str]] | None = None) -> None:
        self.steps.append(Step(name, detail, dropped or []))

    def note(self, candidate: Candidate, text: str) -> None:
        if text:
            self.notes.setdefault(candidate.key, []).append(text)

    def lines(self) -> list[str]:
        """The long form, for the command line."""
        out = [f"{self.route.public}: matched by {self.route.source}"]
        out += [f"  route: {line}" for line in self.route.why]
        for step in self.steps:
            out.append(f"  {step.name}: {step.detail}")
            out += [f"    - dropped {who}: {why}" for who, why in step.dropped]
        out.append("final order:")
        for i, c in enumerate(self.final, 1):
            notes = "; ".join(self.notes.get(c.key, []))
            out.append(f"  {i}. {c.provider.name}  model={c.model}  (tier {c.tier}{'; ' + notes if notes else ''})")
        if not self.final:
            out.append("  (none)")
        return out

    def header(self) -> str:
        """The one-line form for `x-llmmux-route`: ASCII, bounded, the final order first."""
        parts = ["order=" + ",".join(str(c) for c in self.final), f"source={self.route.source}"]
        for step in self.steps:
            dropped = ",".join(f"-{who}({_short(why)})" for who, why in step.dropped)
            parts.append(f"{step.name}={step.detail}{' ' + dropped if dropped else ''}")
        text = "; ".join(parts).encode("ascii", "replace").decode()
        return text if len(text) <= HEADER_LIMIT else text[: HEADER_LIMIT - 3] + "..."

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.route.public,
            "source": self.route.source,
            "route": list(self.route.why),
            "steps": [
                {"step": s.name, "detail": s.detail, "dropped": [{"candidate": w, "why": y} for w, y in s.dropped]}
                for s in self.steps
            ],
            "order": [{"candidate": str(c), "tier": c.tier, "notes": self.notes.get(c.key, [])} for c in self.final],
        }


def _short(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."
