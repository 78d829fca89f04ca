"""The HTTP server under ``vidgate serve``: the listening socket, and uvicorn's httptools
protocol with a deadline on every request head and a cap on open connections.

uvicorn 0.54 has no timeout on a request head: a connection that never sends a byte, or sends
half a head, is held until the client leaves (its keep-alive timer runs only between two
requests, and the first byte of the next one cancels it). Its ``limit_concurrency`` answers
plain text and counts running requests too. So the protocol below adds both, and nothing else:
the deadline covers receiving a head only, never a response in progress (``?wait=`` and the
worker protocol's claims hold theirs for up to a minute).
"""

from __future__ import annotations

import asyncio
import errno
import resource
import socket
from typing import Any, ClassVar

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from vidgate.api.errors import error_response
from vidgate.errors import ServiceUnavailable

BACKLOG = 2048  # uvicorn's own default
RETRY_AFTER_SECONDS = 1
# Descriptors beyond the connections: the database, stored files, engines, the log.
SPARE_DESCRIPTORS = 256


class AddressInUse(OSError):
    """Another program already listens on the address."""


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address ``host`` names (``localhost``: 127.0.0.1 and ::1) on
    ``port``, listening, before anything says it listens.

    Raises AddressInUse when the port is taken, OSError for any other refusal (an address
    this machine does not have, a port below 1024 without the right to it).
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, address) for family, _, _, _, address in found))
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            # Lets a restart bind while the old process's connections sit in TIME_WAIT; Linux
            # still refuses a port that another socket listens on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                # "::" and "0.0.0.0" both named: each socket takes its own family.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            # listen() at once: two sockets with SO_REUSEADDR may both bind one port, and only
            # the second listen() finds out.
            sock.listen(BACKLOG)
    except OSError as error:
        for sock in sockets:
            sock.close()
        if error.errno == errno.EADDRINUSE:
            raise AddressInUse(error.errno, error.strerror) from None
        raise
    return sockets


def raise_descriptor_limit(max_connections: int) -> None:
    """Lift the soft limit on open files towards the hard one, so the connection cap (and
    its 503) is reached before accept() fails for want of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def guarded_protocol(*, header_timeout: float, max_connections: int) -> type[GuardedProtocol]:
    """The protocol class uvicorn builds per connection, with these limits (0: no cap)."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


class GuardedProtocol(HttpToolsProtocol):
    """One connection: a head must arrive whole within ``header_timeout`` seconds of the
    connection opening or of its first byte, and a connection opened while
    ``max_connections`` are open is answered 503 and closed."""

    header_timeout: ClassVar[float] = 20.0
    max_connections: ClassVar[int] = 0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over_cap = 0 < self.max_connections <= len(self.connections)
        super().connection_made(transport)
        if over_cap:
            # uvicorn hands each head to self.app: this connection's only answer is a 503.
            self.app = over_capacity
        # A connection that never sends a byte is held no longer than a slow head.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Bytes that start no request (blank lines between two) cancelled the keep-alive
        # timer without starting a head: the head deadline takes over.
        if (
            self.head_timer is None
            and self.timeout_keep_alive_task is None
            and not self._responding()
            and not self.transport.is_closing()
        ):
            self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self._responding():
            # A pipelined head stalled behind a response in progress: the response finishes,
            # then the connection closes instead of waiting for the rest of that head.
            self.cycle.keep_alive = False
        elif not self.transport.is_closing():
            self.transport.close()


async def over_capacity(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The answer on a connection past the cap: SPEC §5's 503, then the connection closes."""
    error = ServiceUnavailable(
        "The server has too many connections open; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
    )
    await error_response(error)(scope, receive, send)  # type: ignore[arg-type]
