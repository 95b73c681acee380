"""Memory of idle TLS connections: what 1,000 idle client connections cost per connection, in
geoproxy's worker and in HAProxy, over TLS and (for reference) over plain HTTP.

    python scripts/bench_tls_idle.py [--connections 1000]

Each setup is the benchmark's configuration (``bench_services.proxy_config``) with one worker
(HAProxy: one thread). The RSS of the serving processes (geoproxy: its worker; HAProxy: its
process) is read from /proc before the connections open and once they are all open, each
having made one request (so the handshake and the first request's buffers happened), then
idle for two seconds. Every process is started here on 127.0.0.1 and stopped by pid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

import bench_services as services
from bench_services import Service

HOST = "127.0.0.1"


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def open_idle(port: int, count: int, tls: bool) -> list[socket.socket]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opened: list[socket.socket] = []
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    for _ in range(count):
        sock: socket.socket = socket.create_connection((HOST, port), timeout=10)
        if tls:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        opened.append(sock)
    return opened


def measure(name: str, service: Service, pids: list[int], port: int, count: int,
            tls: bool) -> str:
    time.sleep(1)
    before = rss_kib(pids)
    opened = open_idle(port, count, tls)
    time.sleep(2)
    after = rss_kib(pids)
    for sock in opened:
        sock.close()
    per = (after - before) / count
    return f"| {name} | {before / 1024:.1f} | {after / 1024:.1f} | {per:.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geoproxy-tls-idle-"))
    backend_ports = [services.free_tcp_port()]
    backends = services.start_demo_backends(work, backend_ports)
    lines = [f"{args.connections} idle connections (one request each, then idle 2 s)", "",
             "| setup | RSS before, MiB | RSS after, MiB | KiB per connection |",
             "|---|---:|---:|---:|"]
    try:
        for tls in (True, False):
            kind = "TLS" if tls else "plain HTTP"
            port = services.free_tcp_port()
            service = services.start_geoproxy(work, port, backend_ports, tls=tls, workers=1)
            try:
                master = service.cpu_roots[-1]
                workers = [p for p in children(master) if p not in service.cpu_roots]
                lines.append(measure(f"geoproxy, 1 worker, {kind}", service, workers, port,
                                     args.connections, tls))
            finally:
                service.stop()
            if services.find_binary("haproxy") is not None:
                port = services.free_tcp_port()
                service = services.start_haproxy(work, port, backend_ports, tls=tls)
                try:
                    lines.append(measure(f"HAProxy, 1 thread, {kind}", service,
                                         service.cpu_roots[-1:], port, args.connections, tls))
                finally:
                    service.stop()
    finally:
        backends.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    print(f"\nnproc {len(os.sched_getaffinity(0))}; {sys.version.split()[0]}; "
          f"{ssl.OPENSSL_VERSION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
