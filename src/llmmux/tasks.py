"""Stopping background tasks: every service's `aclose` ends its loops the same way."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task (None stands for one never started), then wait until each has ended.

    All are cancelled before any is awaited, so they wind down together; the cancellation each
    task raises back is the expected end, not an error.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
