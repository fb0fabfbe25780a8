"""Each virtual key's and team's spend, charged the moment its request finishes.

At once, not in a batch: the key's next request must see this spend against its budget.
The ledger later settles what it wrote (`settled`), so spend read back from the store and
spend charged here are never counted twice.
"""

from __future__ import annotations

from collections import defaultdict

from ..events import RequestRecord
from ..keys import KeyRing
from ..ledger import Row
from ..ledger.schema import REQUEST_COLUMNS
from . import Remove, Sink, Wiring

_KEY_ID = REQUEST_COLUMNS.index("key_id")
_TEAM_ID = REQUEST_COLUMNS.index("team_id")
_COST = REQUEST_COLUMNS.index("cost_usd")
_END_USER = REQUEST_COLUMNS.index("end_user")


class KeySpend(Sink):
    name = "key_spend"

    def __init__(self, keys: KeyRing, teams: KeyRing) -> None:
        self.keys, self.teams = keys, teams

    def attach(self, wiring: Wiring) -> list[Remove]:
        wiring.on_written.append(self.settled)
        return [wiring.events.subscribe(self.finished)]

    def finished(self, record: RequestRecord) -> None:
        context = record.context
        if context.key_id is None:
            return
        usage = record.usage
        tokens = usage.total_tokens if usage is not None else 0
        self.keys.record(context.key_id, record.cost_usd, tokens, context.end_user)
        if context.team_id is not None:
            self.teams.record(context.team_id, record.cost_usd, tokens, context.end_user)

    def settled(self, rows: list[Row]) -> None:
        """The ledger wrote these rows: their cost is in the store now, no longer pending here."""
        self.keys.settled(*_costs(rows, _KEY_ID))
        self.teams.settled(*_costs(rows, _TEAM_ID))


def _costs(rows: list[Row], owner: int) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """USD per owner (key or team) and per (owner, end user) in written rows."""
    costs: dict[str, float] = defaultdict(float)
    user_costs: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        if row[owner] is not None and row[_COST]:
            costs[row[owner]] += row[_COST]
            if row[_END_USER] is not None:
                user_costs[(row[owner], row[_END_USER])] += row[_COST]
    return costs, user_costs


def build(wiring: Wiring) -> KeySpend:
    return KeySpend(wiring.keys, wiring.teams)
