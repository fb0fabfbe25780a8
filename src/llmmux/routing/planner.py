"""From a request to the ordered candidates to try: resolve, pin, context, strategy, hint.

Each step is skipped when it has nothing to do, so a plain request to a priority route
with no context windows configured costs a dict lookup and a few attribute reads. Health
and limits are not filtered here but at each attempt (`Pipeline`), where they are live;
`explain=True` notes them per candidate.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..bounds import check_model_name, clip
from ..config.route_groups import CAPABILITY_PREFIX
from ..config.size_bands import SizeBand
from ..config.tag_routes import tag_target
from ..errors import InvalidRequest
from ..health.breaker import DRAINED
from ..health.monitor import HealthMonitor
from ..health.signals import LatencyStats
from ..limits.limiter import Limiter
from ..pricing import Price
from ..state import State
from ..types import ChatRequest, EmbeddingRequest
from .complexity import LOW, Complexity, assess
from .explain import Explanation
from .strategies import HINTS, STRATEGIES, Strategy
from .table import Candidate, Route, RouteTable
from .tokens import estimate_prompt_tokens, longest_input_tokens

RoutedRequest = ChatRequest | EmbeddingRequest

ROUND_ROBIN = "rr."


@dataclass(slots=True)
class Plan:
    route: Route
    candidates: list[Candidate]
    signals: RequestSignals
    explanation: Explanation | None = None


class RequestSignals:
    """What strategies read (see `strategies.Signals`), computed lazily for one request."""

    __slots__ = ("_complexity", "_planner", "_tokens", "max_tokens", "request", "size_bands", "stream")

    def __init__(self, request: RoutedRequest, planner: Planner) -> None:
        self.request = request
        self.stream = request.stream if isinstance(request, ChatRequest) else False
        self.max_tokens = request.max_tokens if isinstance(request, ChatRequest) else None
        self.size_bands: list[SizeBand] = planner.table.settings.size_bands
        self._planner = planner
        self._tokens: int | None = None
        self._complexity: Complexity | None = None

    def prompt_tokens(self) -> int:
        """The prompt's estimated tokens (for embeddings: the longest input's)."""
        if self._tokens is None:
            request = self.request
            if isinstance(request, ChatRequest):
                self._tokens = estimate_prompt_tokens(request)
            else:
                self._tokens = longest_input_tokens(request)
        return self._tokens

    def known_tokens(self) -> int | None:
        """The estimate if something already needed it (tpm limits use it when present)."""
        return self._tokens

    def complexity(self) -> Complexity:
        if self._complexity is None:
            request = self.request
            if isinstance(request, ChatRequest):
                self._complexity = assess(request, self.prompt_tokens())
            else:
                self._complexity = Complexity(LOW, 0, ())
        return self._complexity

    def latency(self, candidate: Candidate) -> LatencyStats | None:
        return self._planner.state.get(LatencyStats, latency_key(candidate))

    def in_flight(self, provider: str) -> int:
        return self._planner.limiter.busy(provider)

    def headroom(self, provider: str) -> float:
        return self._planner.limiter.headroom(provider)

    def random(self) -> float:
        return self._planner.rng()

    def turn(self, key: str) -> int:
        return self._planner.state.add(ROUND_ROBIN + key) - 1 + self._planner.turn_offset

    def price(self, candidate: Candidate) -> Price | None:
        return self._planner.table.pricing.known(candidate.provider.name, candidate.model)


def latency_key(candidate: Candidate) -> str:
    return f"{candidate.provider.name}/{candidate.model}"


class Planner:
    def __init__(
        self, table: RouteTable, health: HealthMonitor, limiter: Limiter, rng: Callable[[], float] = random.random
    ) -> None:
        self.table = table
        self.health = health
        self.limiter = limiter
        self.state: State = health.state
        self.rng = rng
        # Workers and instances each keep their own round-robin cursor; starting them at a
        # random place keeps N processes that each see one request from all picking the first.
        self.turn_offset = int(rng() * 1_000_000) if limiter.shared is not None else 0

    # -- which route --

    def resolve(self, request: RoutedRequest, tags: tuple[str, ...] = ()) -> Route:
        """The request's route: a tag route's, its capability's, else its model's; then the pin."""
        check_model_name(request.model)
        route = (
            self._tagged_route(request, tags) or self._capability_route(request) or self.table.resolve(request.model)
        )
        if request.provider is None:
            return route
        pinned = [c for c in route.candidates if c.provider.name == request.provider]
        if not pinned:
            raise InvalidRequest(
                f"Model '{request.model}' is not served by provider '{clip(request.provider)}'.", param="provider"
            )
        return dataclasses.replace(
            route, candidates=pinned, why=[*route.why, f"pinned to provider {request.provider} by the request"]
        )

    def _tagged_route(self, request: RoutedRequest, tags: tuple[str, ...]) -> Route | None:
        rule = tag_target(self.table.settings.tag_routes, tags, request.model)
        if rule is None:
            return None
        route = self.table.resolve(rule.to)
        return dataclasses.replace(route, why=[f"tag '{rule.tag}' routes {request.model} to {rule.to}", *route.why])

    def _capability_route(self, request: RoutedRequest) -> Route | None:
        name = request.capability if isinstance(request, ChatRequest) else None
        if name is None and request.model.startswith(CAPABILITY_PREFIX):
            name = request.model.removeprefix(CAPABILITY_PREFIX)
        if name is None:
            return None
        try:
            return self.table.resolve(CAPABILITY_PREFIX + name)
        except InvalidRequest:
            known = ", ".join(sorted(self.table.capabilities())) or "none are configured"
            raise InvalidRequest(
                f"Unknown capability '{clip(name)}'; known capabilities: {known}.", param="capability"
            ) from None

    # -- in which order --

    def plan(self, request: RoutedRequest, *, explain: bool = False, tags: tuple[str, ...] = ()) -> Plan:
        route = self.resolve(request, tags)
        signals = RequestSignals(request, self)
        explanation = Explanation(route) if explain else None
        candidates = route.candidates
        if route.context_aware:
            candidates = self._fit_context(candidates, signals, explanation)
        strategy = STRATEGIES[route.policy.strategy]
        if strategy.name != "priority" and len(candidates) > 1:
            candidates = self._by_tier(candidates, strategy, signals, route.public)
        if explanation is not None:
            explanation.step("strategy", route.policy.describe())
            self._describe(explanation, candidates, strategy, signals)
        hint = request.provider_hint if isinstance(request, ChatRequest) else None
        if hint is not None:
            candidates = self._hint(candidates, hint, signals, explanation)
        if explanation is not None:
            self._annotate_live(explanation, candidates, route)
        return Plan(route, candidates, signals, explanation)

    def _fit_context(
        self, candidates: list[Candidate], signals: RequestSignals, explanation: Explanation | None
    ) -> list[Candidate]:
        need = signals.prompt_tokens() + (signals.max_tokens or 0)
        fits = [c for c in candidates if c.context_length is None or c.context_length >= need]
        if explanation is not None:
            dropped = [(str(c), f"context window {c.context_length} < {need}") for c in candidates if c not in fits]
            explanation.step(
                "context",
                f"~{signals.prompt_tokens()} prompt tokens + {signals.max_tokens or 0} max_tokens = {need}",
                dropped,
            )
        if not fits:
            largest = max(c.context_length or 0 for c in candidates)
            raise InvalidRequest(
                f"The request needs about {need} tokens (prompt ~{signals.prompt_tokens()} + max_tokens "
                f"{signals.max_tokens or 0}); the largest context window among the candidates is {largest}.",
                param="messages",
                code="context_length_exceeded",
            )
        return fits

    @staticmethod
    def _by_tier(candidates: list[Candidate], strategy: Strategy, signals: RequestSignals, key: str) -> list[Candidate]:
        ordered: list[Candidate] = []
        start = 0
        for i in range(1, len(candidates) + 1):
            if i == len(candidates) or candidates[i].tier != candidates[start].tier:
                tier = candidates[start:i]
                ordered += strategy.order(tier, signals, f"{key}#{tier[0].tier}") if len(tier) > 1 else tier
                start = i
        return ordered

    def _hint(
        self, candidates: list[Candidate], hint: str, signals: RequestSignals, explanation: Explanation | None
    ) -> list[Candidate]:
        strategy = HINTS.get(hint)
        if strategy is None:
            raise InvalidRequest(
                f"Unknown provider_hint '{hint}'; expected one of {', '.join(HINTS)}.", param="provider_hint"
            )
        ordered = strategy.order(candidates, signals, hint)
        if explanation is not None:
            explanation.step("hint", f"{hint}: reordered across tiers by {strategy.name}")
            self._describe(explanation, ordered, strategy, signals)
        return ordered

    @staticmethod
    def _describe(
        explanation: Explanation, candidates: list[Candidate], strategy: Strategy, signals: RequestSignals
    ) -> None:
        for c in candidates:
            explanation.note(c, strategy.describe(c, signals))

    def _annotate_live(self, explanation: Explanation, candidates: list[Candidate], route: Route) -> None:
        """Health and limits as they are now: who would be skipped, and who is close to it."""
        out, full = [], []
        for c in candidates:
            name = c.provider.name
            record = self.health.record(name)
            if not self.health.routable(name):
                retry = self.health.retry_in(name)
                when = "until put back" if record.state == DRAINED else f"retry in {retry:.0f} s"
                out.append((str(c), f"{record.state}, {when} ({record.reason})"))
            elif record.state != "active":
                explanation.note(c, f"{record.state}: {record.reason}")
            limits = self.limiter.limits(name)
            if limits is not None:
                free = self.limiter.headroom(name)
                explanation.note(c, f"limits {limits.describe()}, {free:.0%} free")
                if free <= 0:
                    full.append((str(c), f"at its limits ({limits.describe()}): the next candidate is tried"))
        explanation.step("health", "every candidate routable" if not out else "skipped until they recover", out)
        if full:
            explanation.step("limits", "skipped while at their limits", full)
        bound = route.policy.max_fallbacks
        if bound is not None and len(candidates) > bound + 1:
            explanation.step(
                "fallbacks",
                f"max_fallbacks {bound}: at most {bound + 1} candidates are tried",
                [(str(c), "beyond max_fallbacks") for c in candidates[bound + 1 :]],
            )
        explanation.final = list(candidates)
