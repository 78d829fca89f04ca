"""The egress policy against real HTTP(S) servers on loopback: pinning, redirects, caps, TLS."""

from __future__ import annotations

import gzip
import io
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import trustme
from PIL import Image

from support import TlsPerConnection
from vidgate.errors import FetchFailed, RequestTooLarge
from vidgate.media.addresses import IPAddress
from vidgate.media.egress import EgressPolicy
from vidgate.media.images import fetch_image

MB = 1024 * 1024
Route = Callable[["Handler"], None]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append(Seen(self.command, self.path, headers, body))
        route = self.server.routes.get(self.path)
        if route is None:
            self.reply(404, b"not found", "text/plain")
        else:
            route(self)

    def reply(
        self, status: int, body: bytes = b"", content_type: str | None = None, **headers: str
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        headers.setdefault("Content_Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingServer(TlsPerConnection):
    """Serves routes on a loopback port and records every connection, TLS name and request."""

    daemon_threads = True

    def __init__(
        self, routes: dict[str, Route], host: str, tls: ssl.SSLContext | None = None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), Handler)
        self.routes = routes
        self.tls = tls
        self.connections = 0
        self.requests: list[Seen] = []
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        self.stream_stopped = threading.Event()
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.connections += 1
        return connection, address


@pytest.fixture
def serve() -> Iterator[Callable[..., RecordingServer]]:
    servers: list[RecordingServer] = []

    def start(
        routes: dict[str, Route], *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> RecordingServer:
        server = RecordingServer(routes, host, tls)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), "teal").save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


def image(handler: Handler) -> None:
    handler.reply(200, PNG, "image/png")


def redirect_to(location: str, status: int = 302) -> Route:
    return lambda handler: handler.reply(status, Location=location)


def allow(*servers: RecordingServer, host: str = "127.0.0.1") -> frozenset[tuple[str, int]]:
    return frozenset((host, server.port) for server in servers)


@dataclass
class FakeDNS:
    """An injected resolver: fixed answers per name, with a record of every question."""

    answers: dict[str, list[list[str]]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        # Each answer is used once, the last one forever: a rebinding DNS server.
        answers = self.answers[host]
        current = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ip_address(address) for address in current]


# --- address checks before any connection ------------------------------------------------------


async def test_loopback_is_refused_without_the_allow_list_and_never_contacted(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    url = f"http://127.0.0.1:{server.port}/image.png"
    async with EgressPolicy() as policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.fetch(url, max_bytes=MB)
    assert caught.value.message == (
        "points at 127.0.0.1, a loopback address, which this server does not connect to"
    )
    async with EgressPolicy(allow(server)) as policy:
        assert (await policy.fetch(url, max_bytes=MB)).content == PNG
    # The allowed fetch was served, so a connection from the refused one would show by now.
    assert server.connections == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0x7f.1", "[::ffff:7f00:1]"])
async def test_odd_spellings_of_loopback_are_refused_without_contact(
    serve: Callable[..., RecordingServer], host: str
) -> None:
    server = serve({"/image.png": image})
    async with EgressPolicy() as policy:
        with pytest.raises(FetchFailed, match="loopback address"):
            await policy.fetch(f"http://{host}:{server.port}/image.png", max_bytes=MB)
    assert server.connections == 0


async def test_a_name_resolving_to_loopback_is_refused_without_contact(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    dns = FakeDNS({"evil.test": [["127.0.0.1"]]})
    async with EgressPolicy(resolver=dns) as policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.fetch(f"http://evil.test:{server.port}/image.png", max_bytes=MB)
    assert "resolves to 127.0.0.1, a loopback address" in caught.value.message
    assert server.connections == 0


async def test_localhost_through_the_system_resolver_is_refused_without_contact(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    async with EgressPolicy() as policy:
        with pytest.raises(FetchFailed, match=r"resolves to .*a loopback address"):
            await policy.fetch(f"http://localhost:{server.port}/image.png", max_bytes=MB)
    assert server.connections == 0


async def test_an_allowed_address_passes_under_any_name(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    dns = FakeDNS({"alias.test": [["127.0.0.1"]]})
    async with EgressPolicy(allow(server), resolver=dns) as policy:
        for host in ("alias.test", "2130706433", "127.1"):
            url = f"http://{host}:{server.port}/image.png"
            assert (await policy.fetch(url, max_bytes=MB)).content == PNG
    assert [seen.headers["host"].split(":")[0] for seen in server.requests] == [
        "alias.test",
        "2130706433",
        "127.1",
    ]


async def test_one_refused_address_among_several_refuses_the_name() -> None:
    dns = FakeDNS({"mixed.test": [["93.184.216.34", "10.0.0.5"]]})
    async with EgressPolicy(resolver=dns) as policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.resolve_checked("https://mixed.test/a.png")
    assert caught.value.message == (
        "resolves to 93.184.216.34, 10.0.0.5; 10.0.0.5 is a private address, "
        "which this server does not connect to"
    )


async def test_a_name_that_does_not_resolve_fails_plainly() -> None:
    async with EgressPolicy(resolver=FakeDNS({})) as policy:
        with pytest.raises(FetchFailed, match=r"could not be resolved \(nowhere\.test: Name"):
            await policy.fetch("https://nowhere.test/a.png", max_bytes=MB)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.png", "uses the ftp scheme; only http and https URLs are accepted"),
        ("file:///etc/passwd", "uses the file scheme"),
        ("a.png", "is not an absolute URL"),
        ("http://user:secret@example.com/a.png", "contains a user name or password"),
        ("http://example.com:99999/a.png", "has port 99999"),
        ("http://0177.0.0.1/a.png", "is not a valid URL"),
    ],
)
async def test_unusable_urls_are_refused_before_any_lookup(url: str, message: str) -> None:
    dns = FakeDNS({"example.com": [["93.184.216.34"]]})
    async with EgressPolicy(resolver=dns) as policy:
        with pytest.raises(FetchFailed, match=message):
            await policy.fetch(url, max_bytes=MB)
    assert dns.asked == []


async def test_an_allowed_name_is_looked_up_once_and_connected_to_by_address(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    # A rebinding DNS server: the second answer would lead elsewhere, but nobody asks it.
    dns = FakeDNS({"images.test": [["127.0.0.1"], ["10.255.255.1"]]})
    async with EgressPolicy(allow(server, host="images.test"), resolver=dns) as policy:
        fetched = await policy.fetch(f"http://images.test:{server.port}/image.png", max_bytes=MB)
    assert fetched.content == PNG
    assert str(fetched.url) == f"http://images.test:{server.port}/image.png"
    assert dns.asked == ["images.test"]
    assert server.requests[0].headers["host"] == f"images.test:{server.port}"


async def test_proxy_environment_variables_are_ignored(
    serve: Callable[..., RecordingServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve({"/image.png": image})
    proxy = serve({})
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    async with EgressPolicy(allow(server, proxy)) as policy:
        await policy.fetch(f"http://127.0.0.1:{server.port}/image.png", max_bytes=MB)
    assert proxy.connections == 0
    assert len(server.requests) == 1


async def test_ipv6_loopback_is_pinned_with_brackets(
    serve: Callable[..., RecordingServer],
) -> None:
    try:
        server = serve({"/image.png": image}, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with EgressPolicy(allow(server, host="::1")) as policy:
        fetched = await policy.fetch(f"http://[::1]:{server.port}/image.png", max_bytes=MB)
    assert fetched.content == PNG
    assert server.requests[0].headers["host"] == f"[::1]:{server.port}"


# --- what comes back --------------------------------------------------------------------------


async def test_an_image_is_fetched_raw_and_validated(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/image.png": image})
    async with EgressPolicy(allow(server)) as policy:
        data, info = await fetch_image(policy, f"http://127.0.0.1:{server.port}/image.png")
    assert data == PNG
    assert (info.format, info.width, info.height) == ("PNG", 32, 24)
    seen = server.requests[0].headers
    assert seen["accept-encoding"] == "identity"
    assert seen["accept"] == "image/jpeg, image/png, image/webp"
    assert seen["host"] == f"127.0.0.1:{server.port}"
    assert "cookie" not in seen


async def test_cookies_are_neither_kept_nor_sent(serve: Callable[..., RecordingServer]) -> None:
    def set_cookie(handler: Handler) -> None:
        handler.reply(200, PNG, "image/png", Set_Cookie="session=secret; Path=/")

    server = serve({"/first.png": set_cookie, "/image.png": image})
    async with EgressPolicy(allow(server)) as policy:
        for path in ("/first.png", "/image.png"):
            await policy.fetch(f"http://127.0.0.1:{server.port}{path}", max_bytes=MB)
    assert [seen.headers.get("cookie") for seen in server.requests] == [None, None]


async def test_an_html_page_named_png_is_refused(serve: Callable[..., RecordingServer]) -> None:
    page = b"<!doctype html><html><body>Please log in</body></html>"
    server = serve({"/photo.png": lambda h: h.reply(200, page, "image/png")})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(FetchFailed, match="is an HTML page; only JPEG, PNG and WebP"):
            await fetch_image(policy, f"http://127.0.0.1:{server.port}/photo.png")


async def test_an_error_status_is_reported(serve: Callable[..., RecordingServer]) -> None:
    server = serve({})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.fetch(f"http://127.0.0.1:{server.port}/missing.png", max_bytes=MB)
    assert caught.value.message == "answered HTTP 404"


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    serve: Callable[..., RecordingServer],
) -> None:
    def huge(handler: Handler) -> None:
        handler.reply(200, b"\x89PNG", "image/png", Content_Length=str(11_744_052))
        handler.close_connection = True

    server = serve({"/huge.png": huge})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(RequestTooLarge) as caught:
            await policy.fetch(f"http://127.0.0.1:{server.port}/huge.png", max_bytes=10 * MB)
    assert caught.value.message == "is 11.2 MB, over the 10 MB limit"


async def test_an_endless_body_stops_being_read_past_the_cap(
    serve: Callable[..., RecordingServer],
) -> None:
    def endless(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Connection", "close")  # no length: the body ends when we close
        handler.end_headers()
        handler.close_connection = True
        chunk = b"\x00" * 65536
        try:
            while not handler.server.release.is_set():
                handler.wfile.write(chunk)
        except OSError:
            handler.server.stream_stopped.set()

    server = serve({"/endless.png": endless})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(RequestTooLarge) as caught:
            await policy.fetch(f"http://127.0.0.1:{server.port}/endless.png", max_bytes=256 * 1024)
    assert caught.value.message == "is over the 256 KB limit"
    assert server.stream_stopped.wait(timeout=30), "the client kept the stream open"


async def test_a_gzip_bomb_is_never_inflated(serve: Callable[..., RecordingServer]) -> None:
    bomb = gzip.compress(b"\x00" * (64 * MB), compresslevel=1)
    assert len(bomb) < MB

    def gzipped(handler: Handler) -> None:
        # Served compressed although the request asked for identity.
        handler.reply(200, bomb, "image/png", Content_Encoding="gzip")

    server = serve({"/bomb.png": gzipped})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(FetchFailed, match="Content-Encoding gzip although only identity"):
            await policy.fetch(f"http://127.0.0.1:{server.port}/bomb.png", max_bytes=10 * MB)


def drip(handler: Handler) -> None:
    """A valid response whose body arrives a byte at a time, each well within a read timeout."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(PNG)))
    handler.end_headers()
    try:
        for byte in PNG:
            if handler.server.release.wait(timeout=0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    except OSError:
        handler.server.stream_stopped.set()


async def test_a_dripping_body_is_cut_off_at_the_whole_fetch_deadline(
    serve: Callable[..., RecordingServer],
) -> None:
    server = serve({"/drip.png": drip})
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(FetchFailed, match=r"did not finish downloading within 0\.5 s"):
            await policy.fetch(
                f"http://127.0.0.1:{server.port}/drip.png", max_bytes=MB, timeout=0.5
            )
    assert server.stream_stopped.wait(timeout=30), "the client kept the connection open"


# --- redirects --------------------------------------------------------------------------------


def hops(count: int) -> dict[str, Route]:
    # Relative Locations ("2" from /hop/3) exercise resolution against the current URL.
    routes: dict[str, Route] = {f"/hop/{n}": redirect_to(str(n - 1)) for n in range(1, count + 1)}
    routes["/hop/0"] = image
    return routes


async def test_three_redirects_are_followed(serve: Callable[..., RecordingServer]) -> None:
    server = serve(hops(3))
    async with EgressPolicy(allow(server)) as policy:
        fetched = await policy.fetch(f"http://127.0.0.1:{server.port}/hop/3", max_bytes=MB)
    assert fetched.content == PNG
    assert fetched.url.path == "/hop/0"
    assert [seen.path for seen in server.requests] == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]


async def test_four_redirects_are_too_many(serve: Callable[..., RecordingServer]) -> None:
    server = serve(hops(4))
    async with EgressPolicy(allow(server)) as policy:
        with pytest.raises(FetchFailed, match="too many redirects"):
            await policy.fetch(f"http://127.0.0.1:{server.port}/hop/4", max_bytes=MB)
    assert len(server.requests) == 4


async def test_a_redirect_to_a_refused_address_is_not_followed(
    serve: Callable[..., RecordingServer],
) -> None:
    target = serve({"/image.png": image})
    hidden = f"http://127.0.0.1:{target.port}/image.png"
    start = serve({"/go": redirect_to(hidden, 307)})
    async with EgressPolicy(allow(start)) as policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.fetch(f"http://127.0.0.1:{start.port}/go", max_bytes=MB)
    assert caught.value.message == (
        f"redirects to {hidden}, which points at 127.0.0.1, a loopback address, "
        "which this server does not connect to"
    )
    assert target.connections == 0


async def test_a_redirect_to_a_name_is_checked_again(serve: Callable[..., RecordingServer]) -> None:
    start = serve({"/go": redirect_to("http://metadata.test/latest/meta-data/")})
    dns = FakeDNS({"metadata.test": [["169.254.169.254"]]})
    async with EgressPolicy(allow(start), resolver=dns) as policy:
        with pytest.raises(
            FetchFailed, match=r"which resolves to 169\.254\.169\.254, a link-local"
        ):
            await policy.fetch(f"http://127.0.0.1:{start.port}/go", max_bytes=MB)


# --- TLS --------------------------------------------------------------------------------------


def tls_for(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def loopback_dns(*names: str) -> FakeDNS:
    return FakeDNS({name: [["127.0.0.1"]] for name in names})


async def test_https_sends_the_name_as_sni_and_verifies_the_certificate_for_it(
    serve: Callable[..., RecordingServer], ca: trustme.CA, ca_file: Path
) -> None:
    # The certificate names images.test only, not 127.0.0.1: the connection goes to the
    # address, yet the certificate must be checked against the name for this to succeed.
    server = serve({"/image.png": image}, tls=tls_for(ca, "images.test"))
    policy = EgressPolicy(
        allow(server, host="images.test"), ca_bundle=ca_file, resolver=loopback_dns("images.test")
    )
    async with policy:
        fetched = await policy.fetch(f"https://images.test:{server.port}/image.png", max_bytes=MB)
    assert fetched.content == PNG
    assert server.server_names == ["images.test"]
    assert server.requests[0].headers["host"] == f"images.test:{server.port}"


async def test_a_certificate_for_another_name_is_refused(
    serve: Callable[..., RecordingServer], ca: trustme.CA, ca_file: Path
) -> None:
    server = serve({"/image.png": image}, tls=tls_for(ca, "other.test", "127.0.0.1"))
    policy = EgressPolicy(
        allow(server, host="images.test"), ca_bundle=ca_file, resolver=loopback_dns("images.test")
    )
    async with policy:
        with pytest.raises(FetchFailed) as caught:
            await policy.fetch(f"https://images.test:{server.port}/image.png", max_bytes=MB)
    assert caught.value.message.startswith("failed the TLS check (Hostname mismatch")
    assert "images.test" in caught.value.message
    assert server.requests == []


async def test_a_certificate_from_an_unknown_authority_is_refused(
    serve: Callable[..., RecordingServer], ca: trustme.CA
) -> None:
    server = serve({"/image.png": image}, tls=tls_for(ca, "images.test"))
    policy = EgressPolicy(allow(server, host="images.test"), resolver=loopback_dns("images.test"))
    async with policy:
        with pytest.raises(FetchFailed, match="failed the TLS check"):
            await policy.fetch(f"https://images.test:{server.port}/image.png", max_bytes=MB)
    assert server.requests == []


async def test_tls_connections_are_not_shared_between_names_on_one_address(
    serve: Callable[..., RecordingServer], ca: trustme.CA, ca_file: Path
) -> None:
    server = serve({"/image.png": image}, tls=tls_for(ca, "a.test", "b.test"))
    names = ("a.test", "b.test", "a.test")
    policy = EgressPolicy(
        frozenset((name, server.port) for name in names),
        ca_bundle=ca_file,
        resolver=loopback_dns(*names),
    )
    async with policy:
        for name in names:
            await policy.fetch(f"https://{name}:{server.port}/image.png", max_bytes=MB)
    assert server.server_names == list(names)
    assert [seen.headers["host"].split(":")[0] for seen in server.requests] == list(names)


# --- post_json (the webhook path) -------------------------------------------------------------


@pytest.fixture
def hooks(
    serve: Callable[..., RecordingServer], ca: trustme.CA, ca_file: Path
) -> tuple[RecordingServer, EgressPolicy]:
    def slow(handler: Handler) -> None:
        handler.server.release.wait(timeout=30)
        handler.reply(204)

    routes: dict[str, Route] = {
        "/hook": lambda h: h.reply(204),
        "/moved": redirect_to("https://hooks.test/elsewhere", 302),
        "/slow": slow,
        "/chatty": lambda h: h.reply(200, b"x" * 200_000, "text/plain"),
        "/drip": drip,
    }
    server = serve(routes, tls=tls_for(ca, "hooks.test"))
    policy = EgressPolicy(
        allow(server, host="hooks.test"), ca_bundle=ca_file, resolver=loopback_dns("hooks.test")
    )
    return server, policy


async def test_post_json_sends_the_body_and_returns_the_answer(
    hooks: tuple[RecordingServer, EgressPolicy],
) -> None:
    server, policy = hooks
    async with policy:
        response = await policy.post_json(
            f"https://hooks.test:{server.port}/hook", b'{"id": 1}', {"webhook-id": "msg_1"}, 10
        )
    assert response.status_code == 204
    [seen] = server.requests
    assert (seen.method, seen.body) == ("POST", b'{"id": 1}')
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["webhook-id"] == "msg_1"
    assert server.server_names == ["hooks.test"]


async def test_post_json_returns_a_redirect_without_following_it(
    hooks: tuple[RecordingServer, EgressPolicy],
) -> None:
    server, policy = hooks
    async with policy:
        response = await policy.post_json(f"https://hooks.test:{server.port}/moved", b"{}", {}, 10)
    assert response.status_code == 302
    assert response.headers["location"] == "https://hooks.test/elsewhere"
    assert len(server.requests) == 1


async def test_post_json_reads_at_most_the_response_cap(
    hooks: tuple[RecordingServer, EgressPolicy],
) -> None:
    server, policy = hooks
    async with policy:
        response = await policy.post_json(
            f"https://hooks.test:{server.port}/chatty", b"{}", {}, 10, max_response_bytes=1000
        )
    assert response.status_code == 200
    assert response.content == b"x" * 1000


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_post_json_gives_up_at_the_deadline(
    hooks: tuple[RecordingServer, EgressPolicy], path: str
) -> None:
    # /slow never answers; /drip answers at once but sends its body a byte at a time, so only
    # a deadline for the whole attempt (not per read) stops it.
    server, policy = hooks
    async with policy:
        with pytest.raises(FetchFailed, match=r"did not answer within 0\.5 s"):
            await policy.post_json(f"https://hooks.test:{server.port}{path}", b"{}", {}, 0.5)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.test/hook", "uses the http scheme; only https URLs are accepted"),
        ("https://127.0.0.1/hook", "points at 127.0.0.1, a loopback address"),
        ("https://internal.test/hook", "resolves to 10.1.2.3, a private address"),
    ],
)
async def test_post_json_refuses_what_a_callback_may_not_be(url: str, message: str) -> None:
    dns = FakeDNS({"hooks.test": [["93.184.216.34"]], "internal.test": [["10.1.2.3"]]})
    async with EgressPolicy(resolver=dns) as policy:
        with pytest.raises(FetchFailed, match=message):
            await policy.post_json(url, b"{}", {}, 10)
