"""The demo backend over real sockets: what the demo, the tests and the benchmark rely on.

Every answer names its server (X-Server); keep-alive and chunked uploads work; /headers shows
the request head as sent; /stats tells connections from requests and counts what is in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geoproxy.demo.app import expected_bytes
from geoproxy.demo.fleet import BackendSpec, BackendStartError, start_backends, stop_backends
from tests.support.backends import Backend
from tests.support.ports import free_port, free_ports
from tests.support.raw_client import RawConnection, exchange
from tests.support.websocket_client import CLOSE, PING, PONG, TEXT, WebSocketClient

Start = Callable[..., list[Backend]]


@pytest.fixture
def backend(backends: Start) -> Backend:
    (started,) = backends(1, names=["alpha"])
    return started


def get(path: str, host: str = "127.0.0.1") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def connect(backend: Backend) -> RawConnection:
    return RawConnection("127.0.0.1", backend.port, timeout=5)


def test_root_and_unknown_paths_answer_served_by_its_name(backend: Backend) -> None:
    for path in ("/", "/no/such/page?x=1"):
        answer = backend.request("GET", path)
        assert answer.status == 200
        assert answer.body == b"served by alpha"
        assert answer.header("X-Server") == "alpha"


def test_every_endpoint_names_the_server_in_x_server(backend: Backend) -> None:
    paths = ["/status/503", "/status/204", "/bytes/3", "/headers", "/set-cookie", "/health"]
    paths += ["/slow?ms=1", "/stats", "/status/nope"]
    for path in paths:
        assert backend.request("GET", path).header("X-Server") == "alpha", path
    assert backend.request("POST", "/echo", b"x").header("X-Server") == "alpha"


def test_ws_echoes_text_with_its_name_answers_pings_and_closes_as_asked(
    backend: Backend,
) -> None:
    with WebSocketClient("127.0.0.1", backend.port) as ws:
        assert ws.handshake("/ws?greet=1") == 101
        assert ws.recv_text() == "alpha: hello"
        assert ws.echo("hi there") == "alpha: hi there"
        assert backend.stats()["in_flight"] == 1
        ws.send_frame(PING, b"p")
        assert ws.recv_frame() == (PONG, b"p")
        ws.send_frame(TEXT, "é".encode() * 40000)  # 80000 bytes: a 64-bit length
        assert ws.recv_text() == "alpha: " + "é" * 40000
        ws.send_close(4000)
        assert ws.recv_frame() == (CLOSE, b"\x0f\xa0")
        assert ws.sees_eof()
    stats = backend.stats()
    assert (stats["in_flight"], stats["requests"]) == (0, 1)


def test_ws_without_a_websocket_handshake_is_a_426(backend: Backend) -> None:
    answer = backend.request("GET", "/ws")
    assert answer.status == 426
    assert answer.header("Upgrade") == "websocket"
    with WebSocketClient("127.0.0.1", backend.port) as ws:
        ws.key = "too short"
        assert ws.handshake() == 426


def test_keep_alive_serves_many_requests_on_one_connection(backend: Backend) -> None:
    backend.reset_stats()
    with connect(backend) as connection:
        for _ in range(5):
            connection.send(get("/"))
            assert connection.read_response().body == b"served by alpha"
        assert not connection.is_closed_by_peer(wait=0.1)
    stats = backend.stats()
    assert (stats["connections"], stats["requests"]) == (1, 5)


def test_pipelined_requests_are_answered_in_order(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(get("/status/201") + get("/status/202") + get("/"))
        assert [connection.read_response().status for _ in range(3)] == [201, 202, 200]


def test_stats_count_connections_apart_from_requests(backend: Backend) -> None:
    backend.reset_stats()
    for _ in range(3):
        with connect(backend) as connection:
            for _ in range(2):
                connection.send(get("/"))
                connection.read_response()
    stats = backend.stats()
    assert stats["connections"] == 3
    assert stats["requests"] == 6
    # accepted also counts the connection this /stats request came on
    assert stats["accepted"] == 4


def test_a_bare_tcp_connect_is_accepted_but_carries_no_request(backend: Backend) -> None:
    backend.reset_stats()
    socket.create_connection(("127.0.0.1", backend.port), timeout=2).close()
    time.sleep(0.1)
    stats = backend.stats()
    assert (stats["accepted"], stats["connections"], stats["requests"]) == (2, 0, 0)


def test_stats_track_requests_in_flight_and_their_maximum(backend: Backend) -> None:
    backend.reset_stats()
    threads = [
        threading.Thread(target=backend.request, args=("GET", "/slow?ms=1000")) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 0.8
    during = backend.stats()
    while during["in_flight"] < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
        during = backend.stats()
    for thread in threads:
        thread.join(timeout=5)
    after = backend.stats()
    assert during["in_flight"] == 4
    assert after["in_flight"] == 0
    assert after["max_in_flight"] == 4


def test_a_streamed_answer_stays_in_flight_until_its_last_byte(backend: Backend) -> None:
    backend.reset_stats()
    with connect(backend) as connection:
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        connection.send(get("/bytes/50000000"))
        connection.sock.recv(100)  # the answer started, far from done: the client is slow
        time.sleep(0.1)
        assert backend.stats()["in_flight"] == 1
    time.sleep(0.2)
    assert backend.stats()["in_flight"] == 0


def test_stats_reset_zeroes_the_counters(backend: Backend) -> None:
    backend.request("GET", "/")
    backend.request("GET", "/health")
    backend.reset_stats()
    stats = backend.stats()
    assert stats == {
        "accepted": 1,
        "connections": 0,
        "requests": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "health_checks": 0,
    }


def test_chunked_upload_to_echo_is_measured_as_it_streams(backend: Backend) -> None:
    chunks = [os.urandom(size) for size in (1, 70000, 3, 200000, 65536)]
    body = b"".join(chunks)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    with connect(backend) as connection:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        connection.send(head + framed)
        answer = json.loads(connection.read_response().body)
        # the connection is still usable: the chunked body was consumed exactly
        connection.send(get("/"))
        assert connection.read_response().body == b"served by alpha"
    assert answer == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_echo_with_content_length_counts_every_byte(backend: Backend) -> None:
    body = b"a" * 1_000_001
    answer = json.loads(backend.request("PUT", "/echo", body).body)
    assert answer == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_headers_show_the_request_head_in_order_with_original_case(backend: Backend) -> None:
    request = (
        b"GET /headers HTTP/1.1\r\n"
        b"host: example.test\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\n"
        b"cOOkie: a=1\r\n"
        b"x-forwarded-for: 10.0.0.2\r\n"
        b"X-Empty:\r\n"
        b"\r\n"
    )
    with connect(backend) as connection:
        connection.send(request)
        pairs = json.loads(connection.read_response().body)
    assert pairs == [
        ["host", "example.test"],
        ["X-Forwarded-For", "10.0.0.1"],
        ["cOOkie", "a=1"],
        ["x-forwarded-for", "10.0.0.2"],
        ["X-Empty", ""],
    ]


def test_health_fails_after_health_fail_until_health_ok(backend: Backend) -> None:
    assert backend.request("GET", "/health").status == 200
    backend.fail_health()
    assert backend.request("GET", "/health").status == 503
    assert backend.request("OPTIONS", "/").status == 503
    assert backend.request("GET", "/").status == 200  # only health checks fail
    backend.pass_health()
    assert backend.request("GET", "/health").status == 200


def test_health_checks_are_counted_apart_from_requests(backend: Backend) -> None:
    backend.reset_stats()
    backend.request("GET", "/health")
    backend.request("OPTIONS", "/")  # HAProxy's default httpchk probe
    backend.request("GET", "/")
    stats = backend.stats()
    assert (stats["health_checks"], stats["requests"]) == (2, 1)


def test_status_answers_that_status_with_a_body_except_204_and_304(backend: Backend) -> None:
    with connect(backend) as connection:
        for code in (200, 302, 404, 500, 503):
            connection.send(get(f"/status/{code}"))
            response = connection.read_response()
            assert (response.status, response.body) == (code, f"status {code}\n".encode())
        for code in (204, 304):
            connection.send(get(f"/status/{code}"))
            response = connection.read_response()
            assert response.status == code
            assert response.header("Content-Length") is None
            assert response.header("Transfer-Encoding") is None
        connection.send(get("/status/99"))
        assert connection.read_response().status == 400


def test_bytes_streams_with_a_content_length(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(get("/bytes/200000"))
        response = connection.read_response()
    assert response.header("Content-Length") == "200000"
    assert response.body == expected_bytes(200000)


def test_bytes_streams_chunked_when_asked(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(get("/bytes/150001?chunked=1"))
        response = connection.read_response()
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.header("Content-Length") is None
    assert response.body == expected_bytes(150001)


def test_head_answers_the_head_without_a_body(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = connection.read_response("HEAD")
        assert response.header("Content-Length") == str(len(b"served by alpha"))
        connection.send(get("/"))  # nothing stray was sent after the head
        assert connection.read_response().body == b"served by alpha"


def test_slow_answers_after_the_delay(backend: Backend) -> None:
    started = time.monotonic()
    answer = backend.request("GET", "/slow?ms=300")
    assert time.monotonic() - started >= 0.3
    assert answer.status == 200
    assert backend.request("GET", "/slow?ms=soon").status == 400


def test_set_cookie_answers_with_that_cookie(backend: Backend) -> None:
    answer = backend.request("GET", "/set-cookie?name=JSESSIONID&value=abc.s1&path=/app")
    assert answer.header("Set-Cookie") == "JSESSIONID=abc.s1; Path=/app"
    assert backend.request("GET", "/set-cookie?name=a&value=b").header("Set-Cookie") == "a=b"


def test_set_cookie_refuses_a_cookie_with_a_line_break(backend: Backend) -> None:
    answer = backend.request("GET", "/set-cookie?name=a&value=b%0d%0aX-Evil:%201")
    assert answer.status == 400
    assert answer.header("X-Evil") is None


def test_a_malformed_request_gets_400_and_the_connection_closed(backend: Backend) -> None:
    answer = exchange("127.0.0.1", backend.port, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_sigterm_stops_it_cleanly(backend: Backend) -> None:
    os.kill(backend.pid, signal.SIGTERM)
    assert backend.process.process.wait(timeout=5) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", backend.port), timeout=1).close()


def test_sigterm_lets_a_request_in_progress_finish(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(get("/slow?ms=300"))
        time.sleep(0.1)
        os.kill(backend.pid, signal.SIGTERM)
        assert connection.read_response().status == 200
    assert backend.process.process.wait(timeout=5) == 0


def test_sigterm_closes_idle_keep_alive_connections_without_waiting(backend: Backend) -> None:
    with connect(backend) as connection:
        connection.send(get("/"))
        connection.read_response()
        started = time.monotonic()
        os.kill(backend.pid, signal.SIGTERM)
        assert backend.process.process.wait(timeout=5) == 0
        assert time.monotonic() - started < 1.0  # well under the 2 s grace
        assert connection.is_closed_by_peer()


def test_fleet_starts_backends_that_answer_and_stops_them_by_pid(tmp_path: Path) -> None:
    ports = free_ports(2)
    fleet = start_backends([BackendSpec("s1", ports[0]), ("s2", ports[1])], log_dir=tmp_path)
    try:
        for started, port, name in zip(fleet, ports, ("s1", "s2"), strict=True):
            assert started.spec == BackendSpec(name, port)
            with RawConnection("127.0.0.1", port) as connection:
                connection.send(get("/"))
                assert connection.read_response().header("X-Server") == name
    finally:
        stop_backends(fleet)
    assert [started.process.returncode for started in fleet] == [0, 0]


def test_fleet_start_failure_names_the_backend_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))  # bound, not listening: the backend cannot bind it
    with taken:
        specs = [BackendSpec("fine", free_port()), BackendSpec("clash", taken.getsockname()[1])]
        with pytest.raises(BackendStartError, match="demo backend clash") as caught:
            start_backends(specs, log_dir=tmp_path, timeout=5)
    assert "clash.log" in str(caught.value)
    assert "Address already in use" in (tmp_path / "clash.log").read_text()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", specs[0].port), timeout=1).close()
