"""Benchmark: what a 200 MB create body costs the server, with and without an API key.

``vidgate serve`` (no workers) runs in its own process; a raw socket sends the request head and
then the body in 256 KiB pieces, declared (``Content-Length``) or chunked, and stops sending as
soon as an answer is readable. Printed per case: the status, the seconds until the answer, how
much of the body was sent by then (what the server read plus what sat in socket buffers), and
the server's resident memory and peak (VmRSS, VmHWM from /proc) afterwards.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import BENCH_KEY, vidgate_serve, workdir

PIECE = 256 * 1024


def memory_mb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def send(port: int, *, key: bool, chunked: bool, total: int) -> tuple[str, float, int]:
    """One create of ``total`` bytes: (status, seconds to the answer, body bytes sent)."""
    head = b"POST /v1/videos/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"Content-Type: application/json\r\n"
    if key:
        head += f"Authorization: Bearer {BENCH_KEY}\r\n".encode()
    start, end = b'{"model": "veo3.1-fast", "prompt": "a", "x": "', b'"}'
    filler = total - len(start) - len(end)
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        head += f"Content-Length: {total}\r\n\r\n".encode()

    def framed(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

    piece = b"a" * PIECE
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        began = time.perf_counter()
        sock.sendall(head + framed(start))
        try:
            while sent < filler:
                readable, _, _ = select.select([sock], [sock], [], 120)
                if readable:
                    break
                size = min(PIECE, filler - sent)
                sock.sendall(framed(piece[:size]))
                sent += size
            else:
                sock.sendall(framed(end) + (b"0\r\n\r\n" if chunked else b""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and hung up; the answer is still to read
        sock.settimeout(120)
        answer = sock.recv(4096)
        seconds = time.perf_counter() - began
    status = answer.split(b" ", 2)[1].decode() if answer else "closed"
    return status, seconds, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200, help="body size (default 200)")
    args = parser.parse_args()
    total = args.megabytes * 1024 * 1024
    with (
        workdir("vidgate-bench-bodies-") as root,
        vidgate_serve(root / "data", None, workers=0).start() as server,
    ):
        rss, peak = memory_mb(server.pid)
        print(f"server at start: {rss} MB resident, {peak} MB peak")
        for key in (False, True):
            for chunked in (False, True):
                status, seconds, sent = send(server.port, key=key, chunked=chunked, total=total)
                time.sleep(0.5)  # let the server finish with the request before reading
                rss, peak = memory_mb(server.pid)
                print(
                    f"key={'yes' if key else 'no ':3} "
                    f"{'chunked' if chunked else 'declared':8} "
                    f"{args.megabytes} MB -> {status} after {seconds:.2f} s, "
                    f"{sent / 1e6:.1f} MB sent; server {rss} MB resident, {peak} MB peak"
                )


if __name__ == "__main__":
    main()
