"""``option abortonclose``: a queued request whose client closed is dropped, not sent.

HAProxy configuration manual, section 4.2 "option abortonclose": with the option, a request
whose client closed its side (or left) while it waits in a queue is aborted instead of being
sent to the server, and logged with the termination state CQ; without it, the request is
still sent (a client that only half-closed may wait for the answer). HAProxy 2.6 logs the
aborted one as ``web web/<NOSRV> 0/203/-1/-1/203 -1 0 - - CQ--`` (checked against it: no
server, no status, no byte).
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import HOST, Fleet, request, running_fleet, wait_until
from tests.support.backends import Answer
from tests.support.processes import ProcessRegistry

pytestmark = pytest.mark.e2e

CONFIG = """\
defaults
    mode http
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout queue 10s

frontend web
    bind 127.0.0.1:{port}
    use_backend waits if {{ hdr(x-backend) -i waits }}
    default_backend aborts

backend aborts
    option abortonclose
    server s1 {s1} maxconn 1

backend waits
    server s2 {s2} maxconn 1
"""

ABORTED = re.compile(
    r'web aborts/<NOSRV> \d+/\d+/-1/-1/\d+ -1 0 - - CQ-- \S+ \S+ "GET /second HTTP/1.1"'
)


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2"])
        started.start_hosts(CONFIG, count=1, workers=2)
        yield started


def _hold_the_slot(fleet: Fleet, server: str, headers: dict[str, str]) -> tuple[
    threading.Thread, list[Answer]
]:
    """A slow request that takes ``server``'s only slot (its answer lands in the list)."""
    answers: list[Answer] = []
    port = fleet.ports[0]

    def run() -> None:
        answers.append(request(port, "/slow?ms=1500", headers=headers, timeout=15))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    backend = fleet.backends[server]
    wait_until(lambda: backend.stats()["in_flight"] == 1, 10, f"{server} serves the holder")
    return thread, answers


def _queue_then_half_close(fleet: Fleet, backend: str, headers: str) -> socket.socket:
    """A second request, queued behind the holder; then the client shuts its side."""
    client = socket.create_connection((HOST, fleet.ports[0]), timeout=10)
    client.sendall(f"GET /second HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    wait_until(lambda: fleet.redis.zcard(f"gp:{{{backend}}}:queue") == 1, 10,
               f"the second request waits in {backend}'s queue")
    client.shutdown(socket.SHUT_WR)
    return client


def _read_all(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_with_abortonclose_a_queued_request_whose_client_closed_is_never_sent(
    fleet: Fleet,
) -> None:
    s1 = fleet.backends["s1"]
    s1.reset_stats()
    holder, answers = _hold_the_slot(fleet, "s1", {})
    client = _queue_then_half_close(fleet, "aborts", "")
    try:
        assert _read_all(client) == b"", "closed without an answer"
    finally:
        client.close()
    assert not fleet.redis.zcard("gp:{aborts}:queue"), "its ticket left the queue"
    holder.join(timeout=15)
    assert [answer.status for answer in answers] == [200]
    assert s1.stats()["requests"] == 1, "the server got the holder only"
    wait_until(lambda: ABORTED.search(fleet.hosts[0].output()), 10, "the CQ line is logged")


def test_without_abortonclose_a_half_closed_client_still_gets_its_answer(fleet: Fleet) -> None:
    s2 = fleet.backends["s2"]
    s2.reset_stats()
    holder, answers = _hold_the_slot(fleet, "s2", {"X-Backend": "waits"})
    client = _queue_then_half_close(fleet, "waits", "X-Backend: waits\r\n")
    try:
        client.settimeout(15)
        answer = client.recv(65536)
    finally:
        client.close()
    holder.join(timeout=15)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    assert [held.status for held in answers] == [200]
    assert s2.stats()["requests"] == 2, "the server got the half-closed client's request"
    assert not fleet.redis.zcard("gp:{waits}:queue")
