"""What a virtual key may see: the models, routes and provider states its allow-list reaches.

The pipeline removes the candidates a key may not use from every plan; the doors that list
or describe models without routing a request (`/v1/models`, `/api/tags`, `/api/show`,
`/api/ps`, `count_tokens`, `/health/providers`) ask here, so a restricted key neither sees
nor names a model it could not call.
"""

from __future__ import annotations

from ..errors import ModelNotFound
from ..keys import VirtualKey
from ..router import Router
from ..routing import Route
from ..routing.table import Candidate
from .http import Request


def restriction(request: Request) -> VirtualKey | None:
    """The caller's key when an allow-list limits it; None when it may use every model."""
    key = request.key
    return key if key is not None and key.restricted else None


def usable(router: Router, request: Request, route: Route) -> list[Candidate]:
    """The route's candidates the caller may use, in order."""
    key = restriction(request)
    if key is None:
        return list(route.candidates)
    return [c for c in route.candidates if key.allows_any(router.table.names_of(route, c))]


def visible_names(router: Router, request: Request) -> list[str]:
    """The public model names the caller may use (every one without an allow-list)."""
    names = router.models()
    if restriction(request) is None:
        return names
    routes = router.table.routes()
    return [name for name in names if usable(router, request, routes[name])]


def resolve(router: Router, request: Request, name: str) -> Route:
    """`name`'s route; for a restricted key, an unknown name's 404 suggests no other names."""
    try:
        return router.route(name)
    except ModelNotFound:
        if restriction(request) is None:
            raise
        raise ModelNotFound(name) from None


def visible_route(router: Router, request: Request, name: str) -> Route:
    """`name`'s route narrowed to what the caller may use; a 404, as if unknown, when that is nothing."""
    route = resolve(router, request, name)
    if restriction(request) is None:
        return route
    candidates = usable(router, request, route)
    if not candidates:
        raise ModelNotFound(name)
    return Route(route.public, candidates, source=route.source, policy=route.policy)


def may_see_model(router: Router, request: Request, name: str) -> bool:
    """Whether the caller may use the model `name` (a loaded model's name, say)."""
    if restriction(request) is None:
        return True
    try:
        visible_route(router, request, name)
    except ModelNotFound:
        return False
    return True
