"""Route table, planning (strategies, hints, context windows), fallbacks, retries and hedging."""

from .explain import Explanation
from .pipeline import Pipeline
from .planner import Plan, Planner
from .results import Completion, Embeddings
from .route_policy import HedgePolicy, RoutePolicy
from .strategy_settings import RoutingSettings, load_settings
from .stream import ChatStream
from .table import Candidate, Route, RouteTable

__all__ = [
    "Candidate",
    "ChatStream",
    "Completion",
    "Embeddings",
    "Explanation",
    "HedgePolicy",
    "Pipeline",
    "Plan",
    "Planner",
    "Route",
    "RoutePolicy",
    "RouteTable",
    "RoutingSettings",
    "load_settings",
]
