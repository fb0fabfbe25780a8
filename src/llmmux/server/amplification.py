"""Caps on how many generations one request may ask for.

`n` choices, and for legacy completions every prompt times `n`, are each an upstream
generation: uncapped, `{"prompt": [...100 prompts], "n": 128}` is 12,800 paid generations
from one request. `server.max_n` and `server.max_choices` bound them; a route's
`pass_unchecked_params` does not lift these, they protect the gateway's owner, not a backend.
"""

from __future__ import annotations

from ..config.model import ServerConfig
from ..errors import InvalidRequest


def check_choices(n: int | None, prompts: int, settings: ServerConfig) -> None:
    """InvalidRequest when `n`, or `prompts` x `n`, is over the server's caps."""
    n = 1 if n is None else n
    if n > settings.max_n:
        raise InvalidRequest(
            f"Invalid 'n': integer above maximum value. Expected a value <= {settings.max_n}, but got {n} instead.",
            param="n",
            code="integer_above_max_value",
        )
    if prompts * n > settings.max_choices:
        raise InvalidRequest(
            f"This request asks for {prompts} prompts x {n} choices = {prompts * n} completions; "
            f"this gateway allows at most {settings.max_choices} in one request.",
            param="n" if n > 1 else "prompt",
            code="too_many_choices",
        )
