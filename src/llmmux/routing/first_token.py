"""How long to wait for a stream's first chunk from a local model, and what counts as progress.

A cloud API answers a long prompt about as fast as a short one; a model on the gateway's
own CPU or GPU reads the prompt first, at a speed that depends on the model and the machine
(tens of tokens a second on two busy cores, thousands on a GPU). A fixed first-token
deadline makes every long prompt to a slow local model a timeout. So for a local candidate
the deadline is the prompt's estimated tokens over the model's measured prompt speed (twice
that, for the variance of a shared machine), never under the configured first-token
timeout (the floor) and never over `first_token_timeout_max` (the cap):

    deadline = clamp(2 * prompt_tokens / tokens_per_second, floor, cap)

The speed is measured from the model's own streams (tokens it processed over the time to
its first chunk; a cold start or a queue makes it look slower, which errs on the long
side) and starts at `prompt_tokens_per_second` until measured.

And while the prompt is being read, an engine that reports progress (llama.cpp's
`prompt_progress`) re-arms the deadline: a provider calls `report_progress()` from its
stream, and the pipeline's first-token wait, watching through `watching()`, starts over.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DEFAULT_CAP_S = 600.0
DEFAULT_TOKENS_PER_SECOND = 25.0  # a small model on two busy CPU cores: errs on the long side
MARGIN = 2.0
MIN_MEASURED_TOKENS = 64  # shorter prompts are mostly fixed overhead, not reading speed
SMOOTHING = 0.3  # weight of the newest measurement

_progress: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "llmmux_first_token_progress", default=None
)


@contextlib.contextmanager
def watching(on_progress: Callable[[], None]) -> Iterator[None]:
    """Within this block (in this task), `report_progress()` calls `on_progress`."""
    token = _progress.set(on_progress)
    try:
        yield
    finally:
        _progress.reset(token)


def report_progress() -> None:
    """A provider's stream has made progress without a chunk to show for it yet."""
    hook = _progress.get()
    if hook is not None:
        hook()


@dataclass(slots=True)
class PromptSpeeds:
    """Measured prompt-reading speeds per (provider, model), and the deadlines they imply.

    >>> speeds = PromptSpeeds()
    >>> speeds.observe("local/qwen", tokens=2000, seconds=10.0)
    >>> speeds.deadline("local/qwen", prompt_tokens=8000, floor=60.0, cap=600.0, assumed=25.0)
    80.0
    """

    _speeds: dict[str, float] = field(default_factory=dict)

    def observe(self, key: str, *, tokens: int, seconds: float) -> None:
        if tokens < MIN_MEASURED_TOKENS or seconds <= 0:
            return
        speed = tokens / seconds
        known = self._speeds.get(key)
        self._speeds[key] = speed if known is None else known + SMOOTHING * (speed - known)

    def speed(self, key: str) -> float | None:
        return self._speeds.get(key)

    def deadline(self, key: str, *, prompt_tokens: int, floor: float, cap: float, assumed: float) -> float:
        speed = self._speeds.get(key) or assumed
        return max(floor, min(cap, MARGIN * prompt_tokens / speed))
