"""``option abortonclose``: a queued request whose client closed is dropped, not sent; through
haproxy 2.6 and through geoproxy with the same configuration and the same clients.

HAProxy configuration manual, section 4.2 "option abortonclose": with the option, a request
whose client closed its side (or left) while it waits in a queue is aborted instead of being
sent to the server, and logged with the termination state CQ (no server, status -1, no byte:
``web aborts/<NOSRV> 0/203/-1/-1/203 -1 0 - - CQ--``); without it, the request is still sent
and a client that only half-closed gets its answer.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.fleet_harness import HOST, Fleet, request, running_fleet, wait_until
from tests.support.backends import Answer
from tests.support.haproxy_process import start_haproxy
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry

pytestmark = pytest.mark.e2e

CONFIG = """\
global
    log stdout format raw local0

defaults plain
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout queue 10s

defaults aborting from plain
    option abortonclose

frontend web from aborting
    bind 127.0.0.1:{port}
    use_backend waits if {{ hdr(x-backend) -i waits }}
    default_backend aborts

frontend alone from plain
    bind 127.0.0.1:{alone}
    default_backend aborts

backend aborts from aborting
    server s1 {s1} maxconn 1

backend waits from plain
    server s2 {s2} maxconn 1
"""

# the line of the request that was queued, its fields as HAProxy's httplog writes them
SECOND = re.compile(
    r"(?P<frontend>\w+) (?P<backend>\w+)/(?P<server>\S+) \d+/\d+/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/\d+ "
    r'(?P<status>-?\d+) (?P<bytes>\d+) - - (?P<tsc>\S{4}) \S+ \S+ "GET /second HTTP/1.1"'
)
# haproxy shows no queue from outside: its queued request is given this long to get there
HAPROXY_SETTLE = 0.3


@dataclass
class Proxy:
    name: str
    port: int
    alone: int  # the port of the frontend without the option
    output: Callable[[], str]
    queued: Callable[[str], None]  # returns once a request waits in that backend's queue


@pytest.fixture(scope="module")
def alone_port() -> int:
    """geoproxy's port for the frontend without the option."""
    return free_port()


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory, alone_port: int
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2"])
        started.start_hosts(CONFIG, count=1, workers=2, addresses={"alone": str(alone_port)})
        yield started


@pytest.fixture(scope="module", params=["haproxy", "geoproxy"])
def proxy(
    request: pytest.FixtureRequest,
    fleet: Fleet,
    alone_port: int,
    process_registry: ProcessRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    if request.param == "geoproxy":
        host = fleet.hosts[0]

        def in_redis_queue(backend: str) -> None:
            wait_until(lambda: fleet.redis.zcard(f"gp:{{{backend}}}:queue") == 1, 10,
                       f"the second request waits in {backend}'s queue")

        yield Proxy("geoproxy", host.port, alone_port, host.output, in_redis_queue)
        return
    port, alone = free_port(), free_port()
    addresses = {name: backend.address for name, backend in fleet.backends.items()}
    haproxy = start_haproxy(process_registry, CONFIG.format(port=port, alone=alone, **addresses),
                            tmp_path_factory.mktemp("haproxy"), outlive_test=True)
    try:
        yield Proxy("haproxy", port, alone, haproxy.output, lambda _: time.sleep(HAPROXY_SETTLE))
    finally:
        haproxy.stop()


@dataclass
class Outcome:
    answer: bytes  # what the half-closed client got
    requests: int  # requests the server received (the holder's and maybe the second)
    line: dict[str, str]  # the second request's log fields


def _half_close_while_queued(
    fleet: Fleet, proxy: Proxy, port: int, backend: str, server: str, headers: dict[str, str]
) -> Outcome:
    """A slow request takes ``server``'s only slot; a second one, from another client, waits
    in ``backend``'s queue; that client then shuts its side and reads what it gets."""
    before = len(SECOND.findall(proxy.output()))
    counted = fleet.backends[server]
    counted.reset_stats()
    answers: list[Answer] = []

    def hold() -> None:
        answers.append(request(port, "/slow?ms=1500", headers=headers, timeout=15))

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    wait_until(lambda: counted.stats()["in_flight"] == 1, 10, f"{server} serves the holder")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    client = socket.create_connection((HOST, port), timeout=15)
    try:
        client.sendall(f"GET /second HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        proxy.queued(backend)
        client.shutdown(socket.SHUT_WR)
        answer = client.recv(65536)
        while answer and not answer.endswith(b"served by " + server.encode()):
            more = client.recv(65536)
            if not more:
                break
            answer += more
    finally:
        client.close()
    holder.join(timeout=15)
    assert [held.status for held in answers] == [200]

    def lines() -> list[dict[str, str]]:
        return [m.groupdict() for m in SECOND.finditer(proxy.output())][before:]

    wait_until(lines, 10, f"{proxy.name} logs the second request")
    return Outcome(answer, counted.stats()["requests"], lines()[-1])


def test_with_abortonclose_a_queued_request_whose_client_closed_is_never_sent(
    fleet: Fleet, proxy: Proxy
) -> None:
    outcome = _half_close_while_queued(fleet, proxy, proxy.port, "aborts", "s1", {})
    assert outcome.answer == b"", "closed without an answer"
    assert outcome.requests == 1, "the server got the holder only"
    line = outcome.line
    assert (line["frontend"], line["backend"], line["server"], line["Tc"], line["Tr"],
            line["status"], line["bytes"], line["tsc"]) == (
        "web", "aborts", "<NOSRV>", "-1", "-1", "-1", "0", "CQ--")
    if proxy.name == "geoproxy":
        assert not fleet.redis.zcard("gp:{aborts}:queue"), "its ticket left the queue"


def test_without_abortonclose_a_half_closed_client_still_gets_its_answer(
    fleet: Fleet, proxy: Proxy
) -> None:
    outcome = _half_close_while_queued(
        fleet, proxy, proxy.port, "waits", "s2", {"X-Backend": "waits"})
    assert outcome.answer.startswith(b"HTTP/1.1 200 "), outcome.answer[:80]
    assert outcome.requests == 2, "the server got the half-closed client's request"
    line = outcome.line
    assert (line["server"], line["status"], line["tsc"]) == ("s2", "200", "----")
    if proxy.name == "geoproxy":
        assert not fleet.redis.zcard("gp:{waits}:queue")


def test_abortonclose_in_the_backend_alone_changes_nothing(fleet: Fleet, proxy: Proxy) -> None:
    """HAProxy 2.6 aborts only when the frontend has the option too (from its defaults)."""
    outcome = _half_close_while_queued(fleet, proxy, proxy.alone, "aborts", "s1", {})
    assert outcome.answer.startswith(b"HTTP/1.1 200 "), outcome.answer[:80]
    assert outcome.requests == 2
    line = outcome.line
    assert (line["frontend"], line["server"], line["status"], line["tsc"]) == (
        "alone", "s1", "200", "----")
