"""A virtual key's requests-per-minute and tokens-per-minute buckets. Pure: the clock is injected.

Requests per minute take one token when a request is admitted. Tokens per minute cannot be
known until the reply is done, so admission only needs the bucket above zero, and the
tokens actually used are charged afterwards, possibly into debt: a big reply then delays
the key's next requests instead of being refused halfway.

>>> now = [1000.0]
>>> limits = KeyLimits(rpm=2, tpm=None, clock=lambda: now[0])
>>> limits.admit(), limits.admit(), limits.admit()
(None, None, ('requests per minute', 30.0))
>>> now[0] += 30; limits.admit()
"""

from __future__ import annotations

import time

from ..state import Clock
from .bucket import BucketState, TokenBucket

# Past the exact moment the bucket turns positive, so the retry is not refused again.
RETRY_MARGIN_S = 1e-3


class KeyLimits:
    """A key's rpm and tpm buckets (either may be absent) and their levels."""

    __slots__ = ("_clock", "_request_level", "_requests", "_token_level", "_tokens", "rpm", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock = time.monotonic) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._clock = clock
        now = clock()
        self._requests = TokenBucket(rpm, rpm / 60) if rpm else None
        self._tokens = TokenBucket(tpm, tpm / 60) if tpm else None
        self._request_level = self._requests.full(now) if self._requests else BucketState(0.0, now)
        self._token_level = self._tokens.full(now) if self._tokens else BucketState(0.0, now)

    def admit(self) -> tuple[str, float] | None:
        """None if a request may go now, else (which limit, seconds to wait)."""
        now = self._clock()
        if self._tokens is not None:
            level = self._tokens.level(self._token_level, now)
            if level <= 0:
                return "tokens per minute", -level / self._tokens.per_second + RETRY_MARGIN_S
        if self._requests is not None:
            wait = self._requests.take(self._request_level, 1, now)
            if wait:
                return "requests per minute", wait
        return None

    def charge_tokens(self, n: int) -> None:
        if self._tokens is not None and n > 0:
            self._tokens.settle(self._token_level, n, self._clock())
