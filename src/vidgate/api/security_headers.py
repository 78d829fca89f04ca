"""Headers every answer carries (``nosniff``), and ``no-store`` for answers that hold a secret.

``nosniff`` stops a browser from reading a JSON error or a downloaded file as HTML or script
on this origin, where the dashboard keeps its key. It is set by a middleware wrapped around
the whole stack, so the crash handler's 500 (rendered outside the user middleware) has it too.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class SecurityHeaders:
    """Plain ASGI middleware: sets ``X-Content-Type-Options: nosniff`` on every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Replace, not add: a route that set the header itself must not send it twice.
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != NOSNIFF[0]
                ]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, sending)


class HeaderedFastAPI(FastAPI):
    """FastAPI whose whole middleware stack, error pages included, sits inside SecurityHeaders.

    ``add_middleware`` would put it inside Starlette's ServerErrorMiddleware, whose 500s
    would then go out without it.
    """

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def no_store(response: Response) -> None:
    """A route dependency for answers that carry a key or a secret: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"
