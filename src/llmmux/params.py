"""Generation parameters: one spelling on the way in, only what a provider honours on the way out.

Clients and the tools they come from spell the same setting several ways (`temp`,
`max_length`, `num_predict`, `nucleus_sampling`, `ctx_size`, ...). `normalise` rewrites
every alias to its canonical name once, before routing, so wire encoders only ever see
canonical fields. The context window has no field on `ChatRequest` (only backends that
load a model per request can honour it), so its canonical home is `extra["num_ctx"]`.

Each provider declares the canonical parameters it can honour (`Provider.supported_params`).
`unsupported` names the ones a request sets that a provider cannot honour; the pipeline
drops them (`drop`) and reports them in the `x-llmmux-dropped-params` header, or refuses
the request with a 400 when the route is `strict`. Hosted tools (`ChatRequest.hosted_tools`)
count as parameters too, each by its type: a provider honours them only if its
`supported_params` holds `HOSTED_TOOLS` (an OpenAI backend reached through its own Responses API).

>>> request = normalise(ChatRequest(model="m", messages=[], extra={"temp": 0.2, "ctx_size": 8192}))
>>> request.temperature, request.extra
(0.2, {'num_ctx': 8192})
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import InvalidRequest
from .types import SAMPLING_FIELDS, ChatRequest

NUM_CTX = "num_ctx"
HOSTED_TOOLS = "hosted_tools"
"""In `supported_params`: the provider runs every hosted tool a request names (web_search, ...)."""

# alias -> canonical name. Canonical names are ChatRequest fields, except `num_ctx` (in `extra`).
ALIASES: dict[str, str] = {
    "temp": "temperature",
    "max_length": "max_tokens",
    "num_predict": "max_tokens",
    "nucleus_sampling": "top_p",
    "ctx_size": NUM_CTX,
    "context_length": NUM_CTX,
}

# Every canonical generation parameter a provider may or may not honour.
ALL: frozenset[str] = frozenset({*SAMPLING_FIELDS, NUM_CTX})
_FIELDS_IN_ORDER = tuple(sorted(ALL - {NUM_CTX}))  # the canonical fields `requested` reads, sorted once
# What OpenAI's own chat completions API accepts of those.
OPENAI: frozenset[str] = ALL - {"top_k", NUM_CTX}

_NUMBERS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_COUNTS = frozenset({"max_tokens", NUM_CTX, "top_k", "n"})


def normalise(request: ChatRequest) -> ChatRequest:
    """The request with every parameter alias in `extra` moved to its canonical place."""
    found = {alias: request.extra[alias] for alias in ALIASES if alias in request.extra}
    if not found:
        return request
    extra = {k: v for k, v in request.extra.items() if k not in found}
    fields: dict[str, Any] = {}
    for alias, value in found.items():
        name = ALIASES[alias]
        _check_value(alias, value)
        current = extra.get(NUM_CTX) if name == NUM_CTX else fields.get(name, getattr(request, name))
        if current is not None and current != value:
            raise InvalidRequest(
                f"'{alias}' ({value!r}) and '{name}' ({current!r}) set the same parameter to different values.",
                param=alias,
            )
        if name == NUM_CTX:
            extra[NUM_CTX] = value
        else:
            fields[name] = value
    return msgspec.structs.replace(request, extra=extra, **fields)


def _check_value(alias: str, value: Any) -> None:
    name = ALIASES[alias]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in _COUNTS and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise InvalidRequest(f"'{alias}' must be a positive integer, got {value!r}.", param=alias)
    if name in _NUMBERS and not is_number:
        raise InvalidRequest(f"'{alias}' must be a number, got {value!r}.", param=alias)


def requested(request: ChatRequest) -> list[str]:
    """The canonical generation parameters this request sets, in a stable order."""
    names = [name for name in _FIELDS_IN_ORDER if getattr(request, name) is not None]
    if request.extra.get(NUM_CTX) is not None:
        names.append(NUM_CTX)
    return names + list(request.hosted_tools or ())


def unsupported(
    request: ChatRequest,
    supported: frozenset[str],
    wire: str | None = None,
    mapped: frozenset[str] = frozenset(),
    asked: list[str] | None = None,
) -> list[str]:
    """The parameters the request sets that a provider honouring `supported` cannot.

    Hosted tools count unless the provider runs them (`HOSTED_TOOLS` in `supported`). Given
    the provider's `wire`, the request's `wire_only` fields count too unless the provider
    speaks the wire they came in (an Anthropic beta field reaches Anthropic only) or maps
    them into its own terms (`mapped`: Bedrock's cache points for `cache_control`).
    `asked`: `requested(request)`, where the caller has it already.
    """
    hosted = request.hosted_tools or ()
    names = [
        name
        for name in (requested(request) if asked is None else asked)
        if (HOSTED_TOOLS not in supported if name in hosted else name not in supported)
    ]
    if request.wire_only and wire is not None and wire != request.client_wire:
        names += [name for name in request.wire_only if name not in mapped]
    return names


def drop(request: ChatRequest, names: list[str]) -> ChatRequest:
    """The request without `names`, cleared in the canonical fields and `extra` (a body that
    passes through to a same-format upstream follows them: `llmmux.wire.passthrough`)."""
    if not names:
        return request
    hosted = request.hosted_tools or []
    fields: dict[str, Any] = {name: None for name in names if name != NUM_CTX and name not in hosted}
    if hosted:
        fields["hosted_tools"] = [t for t in hosted if t not in names] or None
    extra = {k: v for k, v in request.extra.items() if k not in names}
    return msgspec.structs.replace(request, extra=extra, **fields)


class Fitting:
    """One request fitted to each provider's parameters, computed once per set of parameters.

    A request may try several candidates; each gets the request without what it cannot
    honour, and the answer reports what its provider dropped.
    """

    __slots__ = ("_fitted", "_requested", "request")

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._fitted: dict[frozenset[str], ChatRequest] = {}
        # What the request sets, read once: each candidate's fitting and its answer's
        # dropped-parameter header ask, and a read walks every canonical field.
        self._requested: list[str] | None = None

    def dropped(
        self, supported: frozenset[str], wire: str | None = None, mapped: frozenset[str] = frozenset()
    ) -> list[str]:
        if self._requested is None:
            self._requested = requested(self.request)
        if not self._requested and not self.request.wire_only:
            return []  # the common request: no parameter any provider could lack
        return unsupported(self.request, supported, wire, mapped, self._requested)

    def fitted(self, supported: frozenset[str]) -> ChatRequest:
        fitted = self._fitted.get(supported)
        if fitted is None:
            fitted = self._fitted[supported] = drop(self.request, self.dropped(supported))
        return fitted
