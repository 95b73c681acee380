"""Connection retries and redispatch, against a port that refuses connections, through two
geoproxy hosts sharing one Redis; and a request whose body reached a server is never resent.

HAProxy configuration manual, section 4 "retries" (connection attempts after a failure, a
turn-around timer of min(``timeout connect``, 1 s) apart when retrying on the same server),
"option redispatch" (a persistent request's last retry goes to another server; a balanced one
goes to another server at the first failure when more than one server is active and the
algorithm is not a hash, as HAProxy 2.6's ``stream_choose_redispatch`` does and haproxy 2.6.12
was seen doing on this very configuration), section 1.3.1 (503 when retries are exhausted, 502
when the server died after receiving the request), and DESIGN.md invariant 5 (a request body
is never sent twice).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.fleet_harness import Fleet, request, running_fleet, wait_until
from tests.integration.forward_scripted import Reader, Request, ScriptedServer
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry

TURNAROUND = 0.5  # min(timeout connect, 1 s)

CONFIG = """\
defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    use_backend persistent if {{ hdr(x-backend) -i persistent }}
    use_backend stubborn if {{ hdr(x-backend) -i stubborn }}
    use_backend dies if {{ hdr(x-backend) -i dies }}
    default_backend app

backend app
    balance first
    retries 2
    option redispatch
    server dead {dead}
    server live {s1}

backend persistent
    balance roundrobin
    retries 2
    option redispatch
    cookie SRV
    server dead {dead} cookie dead
    server live {s1} cookie live

backend stubborn
    balance first
    retries 2
    server dead {dead}
    server live {s1}

backend dies
    balance first
    retries 3
    option redispatch
    server dying {dying}
    server live {s1}
"""


class DyingServer:
    """Reads each request whole (head and body), then closes without a word."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.server = ScriptedServer(self._handle)

    def _handle(self, conn: socket.socket) -> None:
        received = Reader(conn).read_request()
        if received is not None:
            self.seen.append(received)


@pytest.fixture(scope="module")
def dying() -> Iterator[DyingServer]:
    scripted = DyingServer()
    with scripted.server:
        yield scripted


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    dying: DyingServer,
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1"])
        addresses = {"dead": f"127.0.0.1:{free_port()}", "dying": f"127.0.0.1:{dying.server.port}"}
        started.start_hosts(CONFIG, count=2, workers=2, addresses=addresses)
        yield started


def _timed(port: int, headers: dict[str, str], **options: object) -> tuple[float, int, str]:
    started = time.monotonic()
    answer = request(port, "/", headers=headers, **options)  # type: ignore[arg-type]
    return time.monotonic() - started, answer.status, answer.header("X-Server") or ""


def _conn_errors(fleet: Fleet, backend: str) -> int:
    return int(fleet.server("dead", backend).get("err_conn", 0))


def test_a_balanced_request_to_a_refusing_server_is_redispatched_at_once(fleet: Fleet) -> None:
    for port in fleet.ports:
        errors = _conn_errors(fleet, "app")
        elapsed, status, server = _timed(port, {})
        assert (status, server) == (200, "s1")
        assert elapsed < TURNAROUND * 0.6, "no turn-around before a balanced redispatch"
        wait_until(lambda e=errors: _conn_errors(fleet, "app") == e + 1, 2, "one failed attempt")  # type: ignore[misc]


def test_a_persistent_request_retries_its_server_and_redispatches_on_the_last_retry(
    fleet: Fleet,
) -> None:
    for port in fleet.ports:
        errors = _conn_errors(fleet, "persistent")
        elapsed, status, server = _timed(port, {"X-Backend": "persistent", "Cookie": "SRV=dead"})
        assert (status, server) == (200, "s1")
        # retries 2: dead, turn-around, dead, then the last retry on another server
        assert TURNAROUND * 0.9 <= elapsed < TURNAROUND * 2, elapsed
        wait_until(
            lambda e=errors: _conn_errors(fleet, "persistent") == e + 2,  # type: ignore[misc]
            2,
            "two failed attempts on the persistent server",
        )


def test_without_redispatch_retries_stay_on_the_server_then_answer_503(fleet: Fleet) -> None:
    for port in fleet.ports:
        elapsed, status, _ = _timed(port, {"X-Backend": "stubborn"})
        assert status == 503
        # three attempts, two turn-arounds
        assert 2 * TURNAROUND * 0.9 <= elapsed < 2 * TURNAROUND + 0.4, elapsed


def test_a_request_whose_body_reached_a_server_that_died_is_answered_502_and_never_resent(
    fleet: Fleet, dying: DyingServer
) -> None:
    live = fleet.backends["s1"]
    before = live.stats()["requests"]
    answer = request(
        fleet.ports[0], "/upload", method="POST", body=b"pay once", headers={"X-Backend": "dies"}
    )
    assert answer.status == 502
    time.sleep(0.3)  # a resend, if any, would have arrived by now
    assert [seen.body for seen in dying.seen] == [b"pay once"]
    assert dying.server.accepted == 1
    assert live.stats()["requests"] == before, "the request went to another server too"


def test_geoproxy_state_counts_the_connection_errors_of_each_server(fleet: Fleet) -> None:
    errors = _conn_errors(fleet, "stubborn")
    assert _timed(fleet.ports[0], {"X-Backend": "stubborn"})[1] == 503
    wait_until(lambda: _conn_errors(fleet, "stubborn") == errors + 3, 2, "three failed attempts")
    stubborn = fleet.state()[1]["stubborn"]
    assert stubborn["dead"]["errors"] == str(errors + 3)
    assert stubborn["live"]["errors"] == "0"
    assert (stubborn["dead"]["oper"], stubborn["dead"]["check"]) == ("up", "-")
