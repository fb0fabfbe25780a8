"""Route table, planning (strategies, hints, context windows), fallbacks, retries and hedging."""

from ..config.route_policy import HedgePolicy, RoutePolicy
from ..config.routing_settings import RoutingSettings
from .explain import Explanation
from .pipeline import Pipeline
from .planner import Plan, Planner
from .results import Completion, Embeddings
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
]
