"""What an idle client connection costs geoproxy's workers in memory, HTTP/2 and HTTP/1.1.

    python scripts/bench_idle_memory.py [--connections 1000]

For each protocol in turn: geoproxy (2 workers, the benchmark's configuration, its own Redis)
over two demo backends, with a ``bind ... proto h2`` for HTTP/2; ``--connections`` client
connections each make one request (``GET /``, answered 200), then stay open, idle. The workers'
RSS (summed, from /proc) is read before the first connection and once all are open and idle;
the difference divided by the connections is the cost of one. Every process is started here on
127.0.0.1 and stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path

import bench_services as services
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import StreamEnded

HOST = services.HOST
READ_TIMEOUT = 10.0


def worker_pids(master: int) -> list[int]:
    """The master's children (gunicorn workers; the Redis is started by this script)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry.name))
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def open_h2(port: int) -> socket.socket:
    """A connection that made one HTTP/2 request and read its answer."""
    sock = socket.create_connection((HOST, port), timeout=READ_TIMEOUT)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", f"{HOST}:{port}")], end_stream=True)
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the answer")
        events = conn.receive_data(data)
        pending = conn.data_to_send()  # SETTINGS ACK
        if pending:
            sock.sendall(pending)
        if any(isinstance(event, StreamEnded) for event in events):
            return sock


def open_h1(port: int) -> socket.socket:
    """A keep-alive connection that made one HTTP/1.1 request and read its answer."""
    sock = socket.create_connection((HOST, port), timeout=READ_TIMEOUT)
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return sock


def measure(work: Path, backend_ports: list[int], count: int, http2: bool) -> float:
    """KiB of worker RSS per idle connection."""
    port = services.free_tcp_port()
    service = services.start_geoproxy(work, port, backend_ports,
                                      bind_options=" proto h2" if http2 else "")
    sockets: list[socket.socket] = []
    try:
        time.sleep(1.0)
        workers = worker_pids(service.processes[-1].pid)
        before = rss_kib(workers)
        opener = open_h2 if http2 else open_h1
        for _ in range(count):
            sockets.append(opener(port))
        time.sleep(2.0)  # idle
        after = rss_kib(workers)
        print(f"{'HTTP/2' if http2 else 'HTTP/1.1'}: {count} idle connections, "
              f"{len(workers)} workers' RSS "
              f"{before} KiB -> {after} KiB: {(after - before) / count:.1f} KiB each")
        return (after - before) / count
    finally:
        for sock in sockets:
            sock.close()
        service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geoproxy-idle-"))
    backend_ports = [services.free_tcp_port(), services.free_tcp_port()]
    backends = services.start_demo_backends(work, backend_ports)
    try:
        measure(work, backend_ports, args.connections, http2=True)
        measure(work, backend_ports, args.connections, http2=False)
    finally:
        backends.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
