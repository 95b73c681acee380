"""geoproxy's ``mode tcp`` benchmark: bulk transfer and connection rate, through HAProxy and
through geoproxy, in the same run, on this machine.

    python scripts/bench_tcp.py [--quick] [--json PATH] [--keep-logs]

Rows:
  a  straight to the servers, no proxy
  b  HAProxy 2.6, ``mode tcp``, 1 thread, balance leastconn
  c  geoproxy, ``mode tcp``, 2 workers, balance leastconn, its own Redis (started here)
Measures, each row in turn, then a second round, medians shown:
  - bulk down / up: one connection moving BULK bytes from a sink server to the client (down) and
    from the client to it (up), timed by the client (a process of its own reading into a 1 MB
    buffer); GB/s, and bytes per CPU-second of the proxy (and its Redis);
  - connections/s: ``wrk -t1 -c32 --latency -H 'Connection: close'`` against nginx behind the
    proxy, so every request is a new TCP connection through it (a Python loop of 32 threads
    instead when wrk or nginx is missing).
Every process is started here on 127.0.0.1 and stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import bench_services as services
from bench_cpu import tree_cpu_seconds
from bench_load import LoadResult, parse_wrk
from bench_services import HOST, Service, find_binary, free_tcp_port, spawn

from geoproxy.demo.fleet import wait_for_port

ROWS = {
    "a": "straight to the servers (no proxy)",
    "b": "HAProxy 2.6, mode tcp, 1 thread, leastconn",
    "c": "geoproxy, mode tcp, 2 workers, leastconn, Redis",
}
CHUNK = 1 << 20
ROUNDS = 2
CONNECTIONS = 32


# -- the sink server and the bulk client (run as subprocesses of this script) -----------------


class _Sink(socketserver.BaseRequestHandler):
    """``GET N\\n`` first: send N bytes and close; anything else: read and drop it all."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        first = sock.recv(65536)
        if first.startswith(b"GET "):
            remaining = int(first[4:].split(b"\n", 1)[0])
            view = memoryview(bytes(CHUNK))
            while remaining > 0:
                remaining -= sock.send(view[: min(CHUNK, remaining)])
            return
        buffer = bytearray(CHUNK)
        while sock.recv_into(buffer):
            pass
        sock.sendall(b"done\n")


def run_sink(port: int) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer((HOST, port), _Sink) as server:
        server.serve_forever()


def bulk_client(port: int, size: int, direction: str) -> None:
    """Move ``size`` bytes over one connection; print the seconds it took."""
    sock = socket.create_connection((HOST, port), timeout=60)
    buffer = bytearray(CHUNK)
    started = time.perf_counter()
    if direction == "down":
        sock.sendall(b"GET %d\n" % size)
        got = 0
        while received := sock.recv_into(buffer):
            got += received
        if got != size:
            raise SystemExit(f"received {got} of {size} bytes")
    else:
        view = memoryview(bytes(CHUNK))
        left = size
        while left > 0:
            left -= sock.send(view[: min(CHUNK, left)])
        sock.shutdown(socket.SHUT_WR)
        if sock.recv(16) != b"done\n":
            raise SystemExit("the sink did not confirm")
    print(time.perf_counter() - started)
    sock.close()


# -- the proxies ---------------------------------------------------------------------------


def tcp_config(bulk_port: int, sink: int, conn_port: int, nginx: int, lines: str = "") -> str:
    return (
        f"global\n{lines}"
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n"
        "    timeout server 60s\n"
        f"frontend bulk\n    bind {HOST}:{bulk_port}\n    default_backend sink\n"
        f"backend sink\n    balance leastconn\n    server s1 {HOST}:{sink}\n"
        f"frontend conns\n    bind {HOST}:{conn_port}\n    default_backend web\n"
        f"backend web\n    balance leastconn\n    server w1 {HOST}:{nginx}\n"
    )


@dataclass
class Target:
    row: str
    service: Service | None
    bulk_port: int
    conn_port: int


def start_row(row: str, work: Path, sink: int, nginx: int) -> Target:
    if row == "a":
        return Target(row, None, sink, nginx)
    bulk, conns = free_tcp_port(HOST), free_tcp_port(HOST)
    log = work / f"row-{row}.log"
    service = Service(ROWS[row], f"http://{HOST}:{conns}/")
    try:
        if row == "b":
            haproxy = find_binary("haproxy")
            if haproxy is None:
                raise services.ServiceError("haproxy is not installed")
            conf = work / "haproxy-tcp.cfg"
            conf.write_text(tcp_config(bulk, sink, conns, nginx,
                                       "    nbthread 1\n    maxconn 4096\n"))
            process = spawn(service, [haproxy, "-db", "-f", str(conf)], log)
        else:
            redis = services.start_redis(service)
            conf = work / "geoproxy-tcp.cfg"
            conf.write_text(tcp_config(bulk, sink, conns, nginx))
            argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(conf), "--workers", "2",
                    "--redis", redis.url]
            process = spawn(service, argv, log)
        service.cpu_roots.append(process.pid)
        services.wait_ready(service, conns, log)
    except BaseException:
        service.stop()
        raise
    return Target(row, service, bulk, conns)


# -- measuring ------------------------------------------------------------------------------


def bulk(target: Target, size: int, direction: str) -> tuple[float, float]:
    """(bytes/s, bytes per CPU-second of the proxy) for one bulk transfer."""
    roots = target.service.cpu_roots if target.service else []
    cpu = tree_cpu_seconds(roots) if roots else 0.0
    argv = [sys.executable, __file__, "--bulk-client", str(target.bulk_port), str(size),
            direction]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    seconds = float(out.stdout.strip())
    used = (tree_cpu_seconds(roots) - cpu) if roots else 0.0
    return size / seconds, (size / used if used > 0 else 0.0)


def connection_rate(target: Target, duration: float) -> LoadResult:
    wrk = shutil.which("wrk")
    url = f"http://{HOST}:{target.conn_port}/"
    if wrk is None:
        return _python_connection_rate(target.conn_port, duration)
    out = subprocess.run(
        [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency", "-H",
         "Connection: close", url],
        capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(out.stdout)


def _python_connection_rate(port: int, duration: float) -> LoadResult:
    done: list[float] = []
    stop = time.monotonic() + duration

    def loop() -> None:
        while time.monotonic() < stop:
            began = time.perf_counter()
            with socket.create_connection((HOST, port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
            done.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=loop) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    ordered = sorted(done) or [0.0]
    return LoadResult(len(done), len(done) / duration, ordered[len(ordered) // 2],
                      ordered[int(len(ordered) * 0.99) - 1], 0, 0)


@dataclass(frozen=True, slots=True)
class Row:
    row: str
    name: str
    down_bps: float
    up_bps: float
    down_per_cpu: float
    conn_rate: float
    conn_p99_ms: float


def measure(targets: list[Target], size: int, duration: float) -> list[Row]:
    samples: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for _ in range(ROUNDS):
        for target in targets:
            down, down_cpu = bulk(target, size, "down")
            up, _ = bulk(target, size, "up")
            load = connection_rate(target, duration)
            samples.setdefault(target.row, []).append(
                (down, up, down_cpu, load.rps, load.p99_ms))
    rows = []
    for row, runs in samples.items():
        med = [statistics.median(values) for values in zip(*runs, strict=True)]
        rows.append(Row(row, ROWS[row], *med))
    return rows


def table(rows: list[Row]) -> str:
    base = next((row for row in rows if row.row == "b"), None)

    def ratio(value: float, of: float | None) -> str:
        return f"{value / of:.2f}" if of else "-"

    lines = [
        "| row | setup | bulk down GB/s | bulk up GB/s | bytes/CPU-s (down) | conn/s | "
        "conn p99 ms | down ÷ HAProxy | up ÷ HAProxy | conn/s ÷ HAProxy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.row} | {row.name} | {row.down_bps / 1e9:.2f} | {row.up_bps / 1e9:.2f} | "
            + (f"{row.down_per_cpu / 1e9:.2f} G" if row.down_per_cpu else "-")
            + f" | {row.conn_rate:,.0f} | {row.conn_p99_ms:.2f} | "
            f"{ratio(row.down_bps, base.down_bps if base else None)} | "
            f"{ratio(row.up_bps, base.up_bps if base else None)} | "
            f"{ratio(row.conn_rate, base.conn_rate if base else None)} |"
        )
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--sink"]:
        run_sink(int(sys.argv[2]))
        return 0
    if sys.argv[1:2] == ["--bulk-client"]:
        bulk_client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller transfers, 3 s loads")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    size = (512 if args.quick else 2048) << 20
    duration = 3.0 if args.quick else 8.0
    work = Path(tempfile.mkdtemp(prefix="geoproxy-bench-tcp-"))
    started: list[Service] = []
    try:
        sink_port, nginx_port = free_tcp_port(HOST), free_tcp_port(HOST)
        sink = Service("sink", f"http://{HOST}:{sink_port}/")
        started.append(sink)
        process = spawn(sink, [sys.executable, __file__, "--sink", str(sink_port)],
                        work / "sink.log")
        wait_for_port(HOST, sink_port, 30, lambda: process.poll() is None)
        if find_binary("nginx"):
            started.append(services.start_nginx(work, [nginx_port]))
        else:
            started.append(services.start_demo_backends(work, [nginx_port]))
        targets = []
        for row in ROWS:
            target = start_row(row, work, sink_port, nginx_port)
            if target.service is not None:
                started.append(target.service)
            targets.append(target)
        rows = measure(targets, size, duration)
    finally:
        for service in reversed(started):
            service.stop()
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    print(f"mode tcp benchmark, {datetime.date.today()}, nproc = {os.cpu_count()}, commit "
          f"{commit or '?'}; bulk {size >> 20} MB per transfer, loads of {duration:g} s, "
          f"{ROUNDS} rounds (medians)\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
