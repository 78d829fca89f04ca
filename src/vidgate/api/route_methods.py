"""The methods a path takes, for a 405's ``Allow`` header.

Starlette's router answers a wrong method with the ``Allow`` of the first route whose path
matched, so ``/v1/keys`` (a GET route and a POST route) was said to take GET only. The full
set is the union over every route whose path matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import fastapi.routing
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def _leaf_routes(routes: Sequence[BaseRoute]) -> Iterable[Any]:
    """The app's routes one by one: newer FastAPI keeps an included router as one entry, which
    ``iter_route_contexts`` opens; older releases listed every route in ``app.routes`` already."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    return routes if expand is None else expand(routes)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route takes at the scope's path, sorted; empty when none matches."""
    methods: set[str] = set()
    for route in _leaf_routes(routes):
        # A match of the path with another method is PARTIAL: it still names its methods.
        match, _ = route.matches(scope)
        if match is not Match.NONE and route.methods:
            methods.update(route.methods)
    return sorted(methods)
