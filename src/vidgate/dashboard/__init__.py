"""The web dashboard: a page at ``/`` and its static files, a client of the public HTTP API."""

from vidgate.dashboard.pages import router

__all__ = ["router"]
