"""Admission: whether a key, its team and its end user may make this request, before it is routed.

Names the request's tags, end user and team, then checks the key's and the team's
allow-lists, budgets (`block_free` included) and limits, raising from the errors tree
(`PermissionDenied`, `BudgetExceeded`, `RateLimited`, ...). What it returns narrows the
candidates the pipeline may route to. The pipeline calls it through `Events.admit`:

    admission = KeyAdmission(router, keys, teams)
    router.events.admit = admission.admit
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable

from . import enduser, tags
from .enduser import end_user_id
from .errors import LLMMuxError, PermissionDenied
from .events import AllowList, CallContext
from .keys import KeyRing, VirtualKey, admit_together
from .pricing import Price
from .router import Router
from .routing.tokens import estimate_prompt_tokens, longest_input_tokens
from .shared.quota import Want
from .tags import request_tags
from .types import ChatRequest, EmbeddingRequest


class KeyAdmission:
    """Admits requests against the virtual keys and teams of one router."""

    def __init__(self, router: Router, keys: KeyRing, teams: KeyRing) -> None:
        self.router = router
        self.keys = keys
        self.teams = teams

    def admit(
        self, request: ChatRequest | EmbeddingRequest, context: CallContext
    ) -> AllowList | Awaitable[AllowList | None] | None:
        """Name the request's tags, end user and team, then check its key's and team's identity,
        budgets and limits now; return what the key and team allow, for the routed candidates.

        With a shared store the key's limits and spend are asked of it: an awaitable then."""
        key = self.keys.get(context.key_id) if context.key_id is not None else None
        team = self.teams.get(key.team_id) if key is not None and key.team_id is not None else None
        headers = context.headers or ()
        defaults = [*(key.tags if key else ()), *(team.tags if team else ())]
        context.tags = request_tags(header(headers, tags.HEADER), request.tags, defaults)
        hashed = self.router.config.privacy.hash_end_users
        context.end_user = end_user_id(header(headers, enduser.HEADER), request.user, hashed=hashed)
        if context.key_id is None:
            return None

        def free() -> bool:  # asked only of a spent budget
            return self._only_free(request, context.tags)

        if team is not None:
            context.team_id = team.id
        if self.keys.shared is not None:
            ahead = functools.partial(self._ahead, request, context.tags)
            return self._admit_shared(context.key_id, team, context.end_user, free, ahead)
        admitted = self.keys.admit(context.key_id, context.end_user, free)
        if team is not None:
            self.teams.admit(team.id, context.end_user, free)
        return _allowed(admitted, team)

    async def _admit_shared(
        self,
        key_id: str,
        team: VirtualKey | None,
        end_user: str | None,
        free: Callable[[], bool],
        ahead: Callable[[], list[Want]],
    ) -> AllowList | None:
        # The key's, the team's and the likely provider's limits in one round trip at most.
        key = self.keys.admit_valid(key_id)
        owners = [(self.keys, key)] + ([(self.teams, self.teams.admit_valid(team.id))] if team is not None else [])
        await admit_together(owners, end_user, free, ahead)
        return _allowed(key, team)

    def _ahead(self, request: ChatRequest | EmbeddingRequest, tags: tuple[str, ...]) -> list[Want]:
        """The provider the request will likely reach first, whose limits its key's round trip may ask for too."""
        try:
            candidates = self.router.pipeline.planner.resolve(request, tags).candidates
        except LLMMuxError:
            return []
        if not candidates:
            return []
        # The estimate the attempt's tpm admission takes (the planner's), so the attempt finds it in the slice.
        tokens = estimate_prompt_tokens(request) if isinstance(request, ChatRequest) else longest_input_tokens(request)
        want = self.router.limiter.ahead(candidates[0].provider.name, tokens)
        return [want] if want is not None else []

    def _only_free(self, request: ChatRequest | EmbeddingRequest, tags: tuple[str, ...]) -> bool:
        """Whether every backend the request may reach is priced at zero (a local model, say)."""
        try:
            route = self.router.pipeline.planner.resolve(request, tags)
        except LLMMuxError:
            return False
        pricing = self.router.pricing
        return all(_is_free(pricing.price(c.provider.name, c.model)) for c in route.candidates)


def _is_free(price: Price) -> bool:
    return not (price.input or price.output or price.cached_input or price.cache_write or price.reasoning)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """A client header (ASGI's lower-case names); a request carries a couple of dozen at most."""
    for found, value in headers:
        if found == name:
            return value
    return None


class _KeyAndTeam:
    """A key that belongs to a team may use what both allow (the stricter wins)."""

    __slots__ = ("key", "team")

    def __init__(self, key: VirtualKey, team: VirtualKey) -> None:
        self.key, self.team = key, team

    def allows_any(self, names: Iterable[str]) -> bool:
        names = tuple(names)
        return self.key.allows_any(names) and self.team.allows_any(names)

    def refusal(self, model: str) -> LLMMuxError:
        if self.key.models:
            return self.key.refusal(model)
        team = self.team
        return PermissionDenied(
            f"The team '{team.name}' may not use model '{model}' (allowed: {', '.join(team.models)}).",
            param="model",
            code="model_not_allowed",
        )


def _allowed(key: VirtualKey, team: VirtualKey | None) -> AllowList | None:
    if team is not None and team.restricted:
        return _KeyAndTeam(key, team)
    return key if key.restricted else None


__all__ = ["KeyAdmission", "header"]
