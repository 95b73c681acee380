"""A worker's memory stays bounded (DESIGN.md invariant 6), at a scale a test run can afford.

The goals (issue 7): a worker's RSS stays flat, within 10 %, over a million requests; a 1 GB
upload and a 1 GB download each pass with the worker growing by less than 20 MB. Here: tens
of thousands of requests and 200 MB each way, through one worker, its RSS read from /proc
(``GEOPROXY_MEMORY_SCALE`` multiplies both, e.g. 5 for 1 GB transfers).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.backends import start_backends
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
SCALE = float(os.environ.get("GEOPROXY_MEMORY_SCALE", "1"))
TRANSFER = int(200 * 1024 * 1024 * SCALE)
WARM_UP_REQUESTS = 3_000
MEASURED_REQUESTS = int(20_000 * SCALE)
MAX_GROWTH = 20 * 1024 * 1024
PIECE = b"\x5a" * (1024 * 1024)

CONFIG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance leastconn
    cookie SERVERID insert indirect nocache
    server s1 127.0.0.1:{backend_port} cookie s1
"""


@dataclass
class Stack:
    port: int
    worker_pid: int


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss(self.pid))


@pytest.fixture(scope="module")
def stack(
    process_registry: ProcessRegistry,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("memory")
    (backend,) = start_backends(process_registry, work, names=["s1"], outlive_test=True)
    proxy: ProxyProcess | None = None
    try:
        config = CONFIG.format(port=free_port(), backend_port=backend.port)
        proxy = start_proxy(process_registry, config, work, redis_server.url, 1, outlive_test=True)
        (worker,) = proxy.wait_for_workers(1)
        yield Stack(proxy.port, worker)
    finally:
        if proxy is not None:
            proxy.stop()
        backend.stop()


def pipelined_gets(port: int, count: int, depth: int = 50) -> None:
    """``count`` GETs on one connection, ``depth`` in flight at a time; each must be a 200."""
    request = b"GET / HTTP/1.1\r\nHost: memory\r\n\r\n"
    with RawConnection(HOST, port, timeout=10.0) as connection:
        done = 0
        while done < count:
            batch = min(depth, count - done)
            connection.send(request * batch)
            for _ in range(batch):
                answer = connection.read_response()
                assert answer.status == 200, answer
            done += batch


def load(port: int, count: int, connections: int = 4) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipelined_gets(port, count // connections)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def test_a_workers_memory_stays_flat_over_many_requests(stack: Stack) -> None:
    load(stack.port, WARM_UP_REQUESTS)
    before = rss(stack.worker_pid)
    load(stack.port, MEASURED_REQUESTS)
    after = rss(stack.worker_pid)
    assert after <= before * 1.10, f"RSS {before} -> {after} over {MEASURED_REQUESTS} requests"


def test_a_large_upload_streams_through_in_bounded_memory(stack: Stack) -> None:
    load(stack.port, 200)
    digest = hashlib.sha256()
    with PeakRss(stack.worker_pid) as peak:
        before = rss(stack.worker_pid)
        with RawConnection(HOST, stack.port, timeout=30.0) as connection:
            connection.send(
                b"POST /echo HTTP/1.1\r\nHost: memory\r\nContent-Length: %d\r\n\r\n" % TRANSFER
            )
            sent = 0
            while sent < TRANSFER:
                piece = PIECE[: TRANSFER - sent]
                connection.send(piece)
                digest.update(piece)
                sent += len(piece)
            answer = connection.read_response()
    assert json.loads(answer.body) == {"length": TRANSFER, "sha256": digest.hexdigest()}
    print(f"RSS {before} -> peak {peak.peak}")
    assert peak.peak - before < MAX_GROWTH, f"RSS {before} -> peak {peak.peak}"


def test_a_large_download_streams_through_in_bounded_memory(stack: Stack) -> None:
    load(stack.port, 200)
    with PeakRss(stack.worker_pid) as peak:
        before = rss(stack.worker_pid)
        sock = socket.create_connection((HOST, stack.port), timeout=30.0)
        with sock:
            sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: memory\r\n\r\n" % TRANSFER)
            received = 0
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                assert data, "closed inside the head"
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            received = len(rest)
            while received < TRANSFER:
                data = sock.recv(1024 * 1024)
                assert data, f"closed after {received} bytes"
                received += len(data)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert received == TRANSFER
    print(f"RSS {before} -> peak {peak.peak}")
    assert peak.peak - before < MAX_GROWTH, f"RSS {before} -> peak {peak.peak}"
