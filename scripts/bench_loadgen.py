"""A small HTTP/1.1 load generator for machines without wrk.

``python scripts/bench_loadgen.py URL --connections 32 --duration 8`` keeps CONNECTIONS
keep-alive connections busy with GET URL for DURATION seconds (each greenlet reconnects after
an error) and prints one JSON object: requests, rps, p50_ms, p99_ms, non_2xx, errors.
Every read has a timeout and the whole run ends within DURATION + 10 seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from urllib.parse import urlsplit

import gevent
from gevent import socket

READ_TIMEOUT = 10.0


class Reader:
    """Reads responses off one connection (Content-Length or chunked bodies)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def _exactly(self, size: int) -> None:
        while len(self.buffer) < size:
            self._fill()
        self.buffer = self.buffer[size:]

    def response(self) -> tuple[int, bool]:
        """Read one response; return its status and whether the server keeps the connection."""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "chunked" in fields.get("transfer-encoding", ""):
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                self._exactly(size + 2)
                if size == 0:
                    break
        elif status not in (204, 304):
            self._exactly(int(fields.get("content-length", "0")))
        return status, fields.get("connection") != "close"


def worker(
    host: str, port: int, request: bytes, deadline: float, out: dict[str, list[float]]
) -> None:
    sock = None
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=READ_TIMEOUT)
                reader = Reader(sock)
            started = time.perf_counter()
            sock.sendall(request)
            status, keep = reader.response()
            out["latencies"].append(time.perf_counter() - started)
            if not 200 <= status < 300:
                out["non_2xx"].append(status)
            if not keep:
                sock.close()
                sock = None
        except OSError:
            out["errors"].append(1.0)
            if sock is not None:
                sock.close()
            sock = None
            gevent.sleep(0.01)
    if sock is not None:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    out: dict[str, list[float]] = {"latencies": [], "non_2xx": [], "errors": []}
    started = time.monotonic()
    deadline = started + args.duration
    greenlets = [
        gevent.spawn(worker, host, port, request, deadline, out) for _ in range(args.connections)
    ]
    gevent.joinall(greenlets, timeout=args.duration + 10)
    gevent.killall(greenlets, timeout=1)
    elapsed = time.monotonic() - started
    latencies = sorted(out["latencies"]) or [0.0]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        json.dumps(
            {
                "requests": len(out["latencies"]),
                "rps": len(out["latencies"]) / elapsed,
                "p50_ms": cuts[49] * 1000,
                "p99_ms": cuts[98] * 1000,
                "non_2xx": len(out["non_2xx"]),
                "errors": len(out["errors"]),
            }
        )
    )


if __name__ == "__main__":
    main()
