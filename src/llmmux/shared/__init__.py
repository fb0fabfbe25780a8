"""State shared by every worker and instance of one gateway: limits, leases, spend, health, keys.

    one process           nothing here: `state.InMemoryState`
    --workers N, one box  the supervisor's holder process over a Unix socket (`holder.py`)
    many machines         Redis or Valkey (`state: {url: redis://...}`, `redis_store.py`)

Both stores speak one small async protocol (`store.SharedStore`) of domain operations that
are atomic on the server side. Each instance leases slices of every limit from them
(`quota.Quotas`), so most requests are admitted without a round trip. `Shared` (in
`client.py`) wraps the store with the fault behaviour: when the store is out of reach the
gateway keeps serving with per-instance limits divided by the live instance count, and
picks the shared view up again when it returns.
"""

from .client import Shared, SharedDown
from .store import Budget, BudgetCheck, Grant, SharedStore

__all__ = ["Budget", "BudgetCheck", "Grant", "Shared", "SharedDown", "SharedStore"]
