"""Bodies stream through the workers both ways, in bounded memory.

HAProxy configuration manual, section 1 ("HAProxy ... forwards the message body in chunks of
tune.bufsize bytes") and "option http-buffer-request" (not set: the request body is not
buffered before the server is chosen), RFC 9112 7.1 (chunked transfer coding both ways), and
DESIGN.md invariant 6: memory per request is bounded, whatever the body's size.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from geoproxy.demo.app import CHUNK, expected_bytes
from tests.e2e.conftest import Stack
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess

BIG = 300 * 1000 * 1000
MAX_GROWTH = 30 * 1024 * 1024  # bytes of resident memory a worker may gain meanwhile
PATTERN = expected_bytes(CHUNK)

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout http-request 2s

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    server s1 {s1}
    server s2 {s2}
"""


@dataclass
class Scene:
    proxy: ProxyProcess
    port: int


@pytest.fixture(scope="module")
def scene(module_stack: Stack) -> Scene:
    s1, s2 = module_stack.backends(2)
    port = free_port()
    proxy = module_stack.proxy(CONFIG.format(port=port, s1=s1.address, s2=s2.address))
    return Scene(proxy, port)


def rss(pid: int) -> int:
    """Resident set size of ``pid``, in bytes (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples the RSS of some processes every 20 ms while the ``with`` block runs."""

    def __init__(self, pids: list[int]) -> None:
        self.before = {pid: rss(pid) for pid in pids}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.peak:
                self.peak[pid] = max(self.peak[pid], rss(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for pid in self.peak:
            self.peak[pid] = max(self.peak[pid], rss(pid))

    def growth(self) -> dict[int, int]:
        return {pid: self.peak[pid] - self.before[pid] for pid in self.peak}


def pattern_checker() -> Callable[[bytes], None]:
    """A function fed the body of ``/bytes/N`` piece by piece; it fails at the first wrong
    byte, without keeping the body."""
    position = 0

    def check(piece: bytes) -> None:
        nonlocal position
        offset = 0
        while offset < len(piece):
            start = (position + offset) % CHUNK
            size = min(CHUNK - start, len(piece) - offset)
            assert piece[offset : offset + size] == PATTERN[start : start + size], position
            offset += size
        position += len(piece)

    return check


def blocks(total: int) -> Iterator[bytes]:
    whole, rest = divmod(total, CHUNK)
    for _ in range(whole):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


def sha256_of_blocks(total: int) -> str:
    digest = hashlib.sha256()
    for block in blocks(total):
        digest.update(block)
    return digest.hexdigest()


def download(port: int, path: str) -> tuple[http.client.HTTPResponse, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    check = pattern_checker()
    received = 0
    while piece := response.read(1 << 20):
        check(piece)
        received += len(piece)
    connection.close()
    return response, received


def upload(port: int, total: int, *, chunked: bool) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {} if chunked else {"Content-Length": str(total)}
    connection.request("POST", "/echo", body=blocks(total), headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    answer: dict[str, object] = json.loads(response.read())
    connection.close()
    return answer


def test_a_300_mb_download_streams_through_in_bounded_worker_memory(scene: Scene) -> None:
    with PeakRss(scene.proxy.worker_pids()) as memory:
        response, received = download(scene.port, f"/bytes/{BIG}")
    assert response.status == 200
    assert response.getheader("Content-Length") == str(BIG)
    assert received == BIG
    assert max(memory.growth().values()) < MAX_GROWTH, memory.growth()


def test_a_300_mb_upload_streams_through_in_bounded_worker_memory(scene: Scene) -> None:
    with PeakRss(scene.proxy.worker_pids()) as memory:
        answer = upload(scene.port, BIG, chunked=False)
    assert answer == {"length": BIG, "sha256": sha256_of_blocks(BIG)}
    assert max(memory.growth().values()) < MAX_GROWTH, memory.growth()


def test_a_chunked_upload_reaches_the_server_whole_in_bounded_worker_memory(
    scene: Scene,
) -> None:
    total = 100 * 1000 * 1000 + 7
    with PeakRss(scene.proxy.worker_pids()) as memory:
        answer = upload(scene.port, total, chunked=True)
    assert answer == {"length": total, "sha256": sha256_of_blocks(total)}
    assert max(memory.growth().values()) < MAX_GROWTH, memory.growth()


def test_a_chunked_download_is_relayed_chunked_and_whole(scene: Scene) -> None:
    total = 50 * 1000 * 1000 + 3
    response, received = download(scene.port, f"/bytes/{total}?chunked=1")
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert received == total


def test_a_small_chunked_upload_arrives_intact(scene: Scene) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", scene.port, timeout=10)
    pieces = [b"hello", b" ", b"chunked", b" world"]
    connection.request("POST", "/echo", body=iter(pieces))
    answer = json.loads(connection.getresponse().read())
    connection.close()
    body = b"".join(pieces)
    assert answer == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
