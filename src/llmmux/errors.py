"""The error tree. Every failure llmmux reports is one of these.

    LLMMuxError                      500 api_error
    ├── InvalidRequest               400 invalid_request_error
    │   ├── ModelNotFound            404 model_not_found (suggests close names)
    │   ├── BodyTooLarge             413 request_too_large
    │   ├── TooDeeplyNested          400 json_too_deep: JSON too deep to walk
    │   ├── NotFound                 404 not_found: no such path on this gateway
    │   │   ├── NoSuchKey            404 key_not_found      (admin: /admin/keys/{id})
    │   │   ├── NoSuchTeam           404 team_not_found     (admin: /admin/teams/{id})
    │   │   ├── NoSuchRequest        404 request_not_found  (admin: /admin/requests/{id})
    │   │   ├── NoSuchProvider       404 provider_not_found (admin: /admin/providers/{name})
    │   │   ├── NoCache              404 cache_disabled     (admin: /admin/cache, no route caches)
    │   │   └── ResponseNotFound     404 (no code, as OpenAI's) a stored Responses API response
    │   └── MethodNotAllowed         405 method_not_allowed, with an Allow header
    ├── AuthenticationFailed         401 authentication_error
    ├── PermissionDenied             403 permission_error
    ├── RateLimited                  429 rate_limit_error (retry_after)
    │   └── BudgetExceeded           429 insufficient_quota: a key's or team's budget is spent
    ├── NoLedger                     503 ledger_disabled: what was asked needs the ledger
    ├── ServerStopping               503 server_stopping: a long-lived stream refused at shutdown
    ├── UpstreamError                carries provider, upstream status, retryable, retry_after
    │   ├── UpstreamConnectError     502, retryable (refused, reset, DNS)
    │   ├── UpstreamTimeout          504, retryable
    │   ├── UpstreamRateLimited      429, retryable, honours Retry-After
    │   ├── UpstreamServerError      502, retryable (5xx)
    │   │   └── ModelLoadFailed      502, one local model cannot load; its provider is fine
    │   ├── UpstreamBadResponse      502, retryable (malformed body or stream)
    │   ├── NotSupported             400, this provider cannot do it: the next candidate may
    │   └── UpstreamClientError      the upstream's own 4xx, not retried, body passed on
    │       ├── ContextLengthExceeded  400, the prompt (plus max_tokens) is over the model's window
    │       └── ContentFiltered        400, the upstream's safety system refused the prompt
    ├── AllAttemptsFailed            502/503/504, lists every attempt and why it failed
    ├── ProvidersUnavailable         503 (retry_after): every candidate is cooling down or down
    ├── SharedStateUnavailable       503: the shared state is down and `state.on_failure` is closed
    └── StreamInterrupted            a stream broke after bytes reached the client

Configuration errors are raised while a config loads, before anything is served, so they
are not HTTP errors and sit outside the tree above:

    ConfigError                      config/problems.py: every Problem (file, key path, what was expected)
    LocalConfigError (ValueError)    local/catalog.py: an in-process provider's settings, (path, message) pairs

`llmmux.loading` reads every setting once and reports each problem as a Problem, so
`Router.from_config`, `llmmux validate` and reload raise one ConfigError listing them all;
LocalConfigError is left to an in-process provider built from a config that skipped it.

Upstream statuses are classified in exactly one place, `classify_status`. A wire format may
refine its result from the error body (Anthropic's "prompt is too long" becomes
`ContextLengthExceeded`), but never overrules the status table. How an error is rendered
(OpenAI, Anthropic or Ollama shape) is the wire formats' business, not this module's.
"""

from __future__ import annotations

import math
from typing import Any

MAX_NAME_CHARS = 256
"""The longest model name the gateway accepts or echoes (Hugging Face ids run to about 100); see `bounds`."""
MAX_MESSAGE_CHARS = 2048
"""The longest message of an error the client caused."""


def clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more characters]"


class LLMMuxError(Exception):
    status = 500
    type = "api_error"
    code: str | None = None
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(LLMMuxError):
    """The client's request is wrong. Its message and param often quote the client's own values
    (a role, a field name, a format): they are clipped, so an echo never outgrows the cap."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(
            clipped(message, MAX_MESSAGE_CHARS),
            param=None if param is None else clipped(param, MAX_NAME_CHARS),
            code=code,
        )


class ModelNotFound(InvalidRequest):
    status = 404
    code = "model_not_found"

    def __init__(self, model: str, suggestions: list[str] | None = None) -> None:
        # The name is the client's: echo no more of it than the gateway would accept.
        message = f"The model '{clipped(model, MAX_NAME_CHARS)}' does not exist or is not routable on this gateway."
        if suggestions:
            message += " Did you mean: " + ", ".join(suggestions) + "?"
        super().__init__(message, param="model")
        self.model = model
        self.suggestions = suggestions or []


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class TooDeeplyNested(InvalidRequest):
    """JSON nested past what the decoder (or anything after it) can walk without running out of stack."""

    code = "json_too_deep"

    def __init__(self) -> None:
        super().__init__("The JSON body of your request is nested too deeply.")


class NotFound(InvalidRequest):
    """Nothing at this path: no endpoint, or no such thing under one (a key, a team, a response)."""

    status = 404
    code: str | None = "not_found"


class NoSuchKey(NotFound):
    code = "key_not_found"


class NoSuchTeam(NotFound):
    code = "team_not_found"


class NoSuchRequest(NotFound):
    code = "request_not_found"


class NoSuchProvider(NotFound):
    code = "provider_not_found"


class NoCache(NotFound):
    code = "cache_disabled"


class ResponseNotFound(NotFound):
    code = None  # OpenAI answers a missing response with no code; its SDKs see the same body from llmmux


class MethodNotAllowed(InvalidRequest):
    """The path exists, but not for this method; `allow` lists the ones it takes (RFC 9110 15.5.6)."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allow)}


class AuthenticationFailed(LLMMuxError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LLMMuxError):
    status = 403
    type = "permission_error"


class RateLimited(LLMMuxError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


class NoLedger(LLMMuxError):
    """Keys, records and reports live in the ledger, and this gateway runs without one."""

    status = 503
    code = "ledger_disabled"


class ServerStopping(LLMMuxError):
    status = 503
    code = "server_stopping"


class BudgetExceeded(RateLimited):
    """A key spent its budget for the period (OpenAI's `insufficient_quota`, so clients stop retrying)."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(LLMMuxError):
    """A failure talking to one provider; the router decides whether to try another."""

    status = 502
    type = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body

    @property
    def kind(self) -> str:
        """A short stable name for logs, metrics and the attempts list: the nearest class's in the table."""
        return next((_KINDS[c] for c in type(self).__mro__ if c in _KINDS), "upstream_error")


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"


class UpstreamServerError(UpstreamError):
    pass


class ModelLoadFailed(UpstreamServerError):
    """One model of an in-process provider cannot load (a missing or broken file, out of
    memory). Routes fall back past it, but health does not count it against the provider,
    whose other models still serve."""


class UpstreamBadResponse(UpstreamError):
    pass


class NotSupported(UpstreamError):
    """The candidate cannot serve this kind of request (e.g. embeddings on a chat-only API)."""

    status = 400
    type = "invalid_request_error"
    code = "not_supported"


class UpstreamClientError(UpstreamError):
    """The upstream refused the request itself: retrying elsewhere would fail the same way."""

    type = "invalid_request_error"
    retryable = False

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if self.upstream_status is not None:
            self.status = self.upstream_status
        self.type = _CLIENT_ERROR_TYPES.get(self.status, "invalid_request_error")


class ContextLengthExceeded(UpstreamClientError):
    """The request does not fit the model's context window; a shorter prompt is the fix, not a retry."""

    code = "context_length_exceeded"


class ContentFiltered(UpstreamClientError):
    """The upstream's content policy refused the request; another provider may judge it differently,
    but silently routing around a safety system is not the gateway's call, so it is not retried."""

    code = "content_filter"


_KINDS: dict[type[UpstreamError], str] = {
    UpstreamConnectError: "connect_error",
    UpstreamTimeout: "timeout",
    UpstreamRateLimited: "rate_limited",
    UpstreamServerError: "server_error",
    ModelLoadFailed: "model_load_failed",
    UpstreamBadResponse: "bad_response",
    NotSupported: "not_supported",
    UpstreamClientError: "client_error",
    ContextLengthExceeded: "context_length_exceeded",
    ContentFiltered: "content_filter",
}

_CLIENT_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
}


class Attempt:
    """One try of one candidate, as reported to the client when everything failed."""

    __slots__ = ("elapsed_ms", "error", "model", "provider")

    def __init__(self, provider: str, model: str, error: UpstreamError, elapsed_ms: float) -> None:
        self.provider = provider
        self.model = model
        self.error = error
        self.elapsed_ms = elapsed_ms

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "error": self.error.kind,
            "status": self.error.upstream_status,
            "message": self.error.message,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


class AllAttemptsFailed(LLMMuxError):
    type = "upstream_error"
    code = "all_providers_failed"

    def __init__(self, model: str, attempts: list[Attempt]) -> None:
        tried = "; ".join(f"{a.provider}/{a.model}: {a.error.kind} ({a.error.message})" for a in attempts)
        super().__init__(f"Every candidate for '{model}' failed. Tried: {tried or 'nothing'}")
        self.attempts = attempts
        self.status = _all_failed_status(attempts)

    def headers(self) -> dict[str, str]:
        retry_afters = [a.error.retry_after for a in self.attempts if a.error.retry_after]
        if self.status == 503 and retry_afters:
            return {"retry-after": str(max(1, round(min(retry_afters))))}
        return {}


def _all_failed_status(attempts: list[Attempt]) -> int:
    kinds = {type(a.error) for a in attempts}
    if kinds and kinds <= {NotSupported}:
        return 400
    if kinds and kinds <= {UpstreamTimeout}:
        return 504
    if kinds and kinds <= {UpstreamRateLimited, UpstreamConnectError}:
        return 503
    return 502


class ProvidersUnavailable(LLMMuxError):
    """No candidate could be tried: each is cooling down or unavailable, and none came back in time."""

    status = 503
    type = "upstream_error"
    code = "providers_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


class SharedStateUnavailable(LLMMuxError):
    """The shared store (Redis, the holder) is out of reach and `state.on_failure: closed` refuses."""

    status = 503
    code = "shared_state_unavailable"

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1"}


class StreamInterrupted(LLMMuxError):
    type = "upstream_error"
    code = "stream_interrupted"


def classify_status(
    status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
) -> UpstreamError:
    """The one table from an upstream HTTP status to an error class."""
    kwargs: dict[str, Any] = {
        "provider": provider,
        "upstream_status": status,
        "retry_after": retry_after,
        "body": body,
    }
    if status == 429:
        return UpstreamRateLimited(message, **kwargs)
    if status == 408:
        return UpstreamTimeout(message, **kwargs)
    if status >= 500:
        return UpstreamServerError(message, **kwargs)
    return UpstreamClientError(message, **kwargs)
