"""Every answer geoproxy makes itself, byte for byte as HAProxy 2.6 makes it.

HAProxy configuration manual: section 1.3.1 (the status codes HAProxy itself emits: 400, 405,
408, 502, 503, 504), "retries" (503 once the connection retries are exhausted), "timeout
server" (504), "timeout http-request" (408), "errorfile" (a configured file replaces the
built-in page), and DESIGN.md invariant 5 (a request that reached a server is never sent
again). The expected pages were captured from haproxy 2.6 on the same requests; a worker never
dies of any of them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Stack
from tests.integration.forward_scripted import Reader, Request, ScriptedServer
from tests.support.backends import Backend
from tests.support.http_client import get, request
from tests.support.ports import free_port
from tests.support.proxy_process import ProxyProcess
from tests.support.raw_client import RawConnection, RawResponse

PAGE_502 = (
    b"HTTP/1.1 502 Bad Gateway\r\n"
    b"content-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n"
    b"<html><body><h1>502 Bad Gateway</h1>\n"
    b"The server returned an invalid or incomplete response.\n</body></html>\n"
)
PAGE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n"
    b"<html><body><h1>503 Service Unavailable</h1>\n"
    b"No server is available to handle this request.\n</body></html>\n"
)
PAGE_504 = (
    b"HTTP/1.1 504 Gateway Time-out\r\n"
    b"content-length: 92\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n"
    b"<html><body><h1>504 Gateway Time-out</h1>\n"
    b"The server didn't respond in time.\n</body></html>\n"
)
PAGE_400 = (
    b"HTTP/1.1 400 Bad request\r\n"
    b"Content-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\n"
    b"Content-Type: text/html\r\n\r\n"
    b"<html><body><h1>400 Bad request</h1>\n"
    b"Your browser sent an invalid request.\n</body></html>\n"
)
PAGE_408 = (
    b"HTTP/1.1 408 Request Time-out\r\n"
    b"Content-length: 110\r\nCache-Control: no-cache\r\nConnection: close\r\n"
    b"Content-Type: text/html\r\n\r\n"
    b"<html><body><h1>408 Request Time-out</h1>\n"
    b"Your browser didn't send a complete request in time.\n</body></html>\n"
)
BODY_405 = (
    b"<html><body><h1>405 Method Not Allowed</h1>\n"
    b"A request was made of a resource using a request method not supported by that "
    b"resource\n</body></html>\n"
)

ERRORFILE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nX-Custom: maintenance\r\n"
    b"Cache-Control: no-cache\r\n\r\nsorry, we are down for maintenance\n"
)
ERRORFILE_502 = (
    b"HTTP/1.0 502 Bad Gateway\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n"
    b"custom bad gateway\n"
)

CONNECT_TIMEOUT = 0.1  # the turnaround between two connection retries: min(1 s, this)
RETRIES = 2

CONFIG = """\
defaults
    mode http
    timeout connect 100ms
    timeout client 5s
    timeout server 3s
    timeout http-request 500ms
    retries {retries}

frontend main
    bind 127.0.0.1:{main_port}
    use_backend refused if {{ path_beg /refused }}
    use_backend invalid if {{ path_beg /invalid }}
    use_backend truncated if {{ path_beg /truncated }}
    use_backend dying if {{ path_beg /dying }}
    use_backend slow if {{ path_beg /slow }}
    use_backend maint if {{ path_beg /maint }}
    default_backend app

frontend custom
    bind 127.0.0.1:{custom_port}
    errorfile 503 {directory}/503.http
    use_backend invalid_custom if {{ path_beg /invalid }}
    default_backend maint

backend app
    server s1 {s1}

backend slow
    timeout server 300ms
    server s1 {s1}

backend refused
    option redispatch
    server dead 127.0.0.1:{dead_port}

backend invalid
    server bad 127.0.0.1:{invalid_port}

backend truncated
    server cut 127.0.0.1:{truncated_port}

backend invalid_custom
    errorfile 502 {directory}/502.http
    server bad 127.0.0.1:{invalid_port}

backend dying
    balance first
    retries 3
    option redispatch
    server dies 127.0.0.1:{dying_port}
    server s1 {s1}

backend maint
    server s1 {s1} disabled
"""


@dataclass
class Scene:
    proxy: ProxyProcess
    main: int
    custom: int
    live: Backend
    dying_seen: list[Request]
    workers: list[int]


def _answer_invalid(conn: socket.socket) -> None:
    if Reader(conn).read_request() is not None:
        conn.sendall(b"HTTP/1.1 abc\r\n\r\n")


TRUNCATED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"


def _answer_truncated(conn: socket.socket) -> None:
    if Reader(conn).read_request() is not None:
        conn.sendall(TRUNCATED_HEAD + b"0123456789")


@pytest.fixture(scope="module")
def scene(module_stack: Stack) -> Iterator[Scene]:
    (live,) = module_stack.backends(1)
    directory = module_stack.directory
    (directory / "503.http").write_bytes(ERRORFILE_503)
    (directory / "502.http").write_bytes(ERRORFILE_502)
    seen: list[Request] = []

    def read_then_die(conn: socket.socket) -> None:
        request = Reader(conn).read_request()
        if request is not None:
            seen.append(request)

    with (
        ScriptedServer(_answer_invalid) as invalid,
        ScriptedServer(read_then_die) as dying,
        ScriptedServer(_answer_truncated) as truncated,
    ):
        main, custom = free_port(), free_port()
        config = CONFIG.format(
            retries=RETRIES,
            main_port=main,
            custom_port=custom,
            directory=directory,
            s1=live.address,
            dead_port=free_port(),
            invalid_port=invalid.port,
            truncated_port=truncated.port,
            dying_port=dying.port,
        )
        proxy = module_stack.proxy(config, workers=2)
        yield Scene(proxy, main, custom, live, seen, proxy.worker_pids())


@pytest.fixture(autouse=True)
def _workers_survive(scene: Scene) -> Iterator[None]:
    yield
    assert scene.proxy.worker_pids() == scene.workers, scene.proxy.output()
    assert "Traceback" not in scene.proxy.output()


def exchange(port: int, raw: bytes, method: str = "GET") -> RawResponse:
    with RawConnection("127.0.0.1", port) as connection:
        connection.send(raw)
        return connection.read_response(method)


def whole(answer: RawResponse) -> bytes:
    return answer.head + answer.body


def get_raw(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def test_a_backend_whose_servers_are_all_disabled_answers_haproxys_503_page(
    scene: Scene,
) -> None:
    assert whole(exchange(scene.main, get_raw("/maint"))) == PAGE_503


def test_a_refused_connection_is_retried_then_answered_with_haproxys_503_page(
    scene: Scene,
) -> None:
    started = time.monotonic()
    answer = exchange(scene.main, get_raw("/refused"))
    elapsed = time.monotonic() - started
    assert whole(answer) == PAGE_503
    # `retries 2`: two more attempts, each after the turnaround of min(1 s, timeout connect)
    assert RETRIES * CONNECT_TIMEOUT * 0.9 <= elapsed < 2.0


def test_an_invalid_server_response_is_answered_with_haproxys_502_page(scene: Scene) -> None:
    assert whole(exchange(scene.main, get_raw("/invalid"))) == PAGE_502


def test_a_body_the_server_cuts_short_cuts_the_client_connection_after_what_came(
    scene: Scene,
) -> None:
    # the head is gone by then: HAProxy forwards what it has and closes, it cannot say 502
    with RawConnection("127.0.0.1", scene.main) as connection:
        connection.send(get_raw("/truncated"))
        answer = connection.read_until_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 100" in head
    assert body == b"0123456789"


def test_a_server_that_does_not_answer_within_timeout_server_gets_haproxys_504_page(
    scene: Scene,
) -> None:
    started = time.monotonic()
    answer = exchange(scene.main, get_raw("/slow?ms=3000"))
    assert whole(answer) == PAGE_504
    assert 0.25 <= time.monotonic() - started < 2.5


def test_a_request_head_not_complete_within_timeout_http_request_gets_haproxys_408_page(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.main) as connection:
        started = time.monotonic()
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Half: ")
        answer = connection.read_until_closed()
        elapsed = time.monotonic() - started
    assert answer == PAGE_408
    assert 0.4 <= elapsed < 3.0


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHo st: test\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 12x\r\n\r\n",
    ],
    ids=["space-in-header-name", "no-target", "bad-content-length"],
)
def test_a_malformed_request_gets_haproxys_400_page_and_the_connection_closes(
    scene: Scene, raw: bytes
) -> None:
    with RawConnection("127.0.0.1", scene.main) as connection:
        connection.send(raw)
        assert connection.read_until_closed() == PAGE_400


def test_connect_is_refused_with_405_and_no_server_is_dialled(scene: Scene) -> None:
    scene.live.reset_stats()
    with RawConnection("127.0.0.1", scene.main) as connection:
        connection.send(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
        answer = connection.read_response("CONNECT")
        assert answer.status == 405
        assert answer.body == BODY_405
        assert answer.header("content-type") == "text/html"
        assert answer.header("cache-control") == "no-cache"
        assert connection.is_closed_by_peer()
    assert scene.live.stats()["requests"] == 0


def test_a_frontend_errorfile_replaces_the_503_page(scene: Scene) -> None:
    answer = exchange(scene.custom, get_raw("/"))
    assert answer.head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert answer.body == b"sorry, we are down for maintenance\n"
    assert answer.header("X-Custom") == "maintenance"
    assert answer.header("Content-Type") == "text/plain"


def test_a_backend_errorfile_replaces_the_502_page_and_its_connection_close_is_obeyed(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.custom) as connection:
        connection.send(get_raw("/invalid"))
        answer = connection.read_response()
        assert answer.status == 502
        assert answer.body == b"custom bad gateway\n"
        assert connection.is_closed_by_peer()


def test_the_builtin_pages_still_serve_frontends_without_errorfiles(scene: Scene) -> None:
    assert whole(exchange(scene.main, get_raw("/maint"))) == PAGE_503
    assert whole(exchange(scene.main, get_raw("/invalid"))) == PAGE_502


def test_a_request_body_sent_to_a_server_that_then_died_is_answered_502_and_never_resent(
    scene: Scene,
) -> None:
    scene.dying_seen.clear()
    scene.live.reset_stats()
    body = b"pay exactly once" * 64
    answer = request(scene.main, "POST", "/dying/pay", body=body)
    assert answer.status == 502
    assert answer.body == PAGE_502.partition(b"\r\n\r\n")[2]
    assert [seen.body for seen in scene.dying_seen] == [body]
    # neither retried on the same server nor redispatched to the live one
    assert scene.live.stats()["requests"] == 0


def test_a_request_without_body_that_reached_a_dying_server_is_not_resent_either(
    scene: Scene,
) -> None:
    scene.dying_seen.clear()
    scene.live.reset_stats()
    assert get(scene.main, "/dying/once").status == 502
    assert len(scene.dying_seen) == 1
    assert scene.live.stats()["requests"] == 0


def test_after_every_error_the_proxy_still_serves_on_a_kept_alive_connection(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.main) as connection:
        for path in ("/maint", "/invalid", "/", "/refused", "/"):
            connection.send(get_raw(path))
            answer = connection.read_response()
            assert answer.status == {"/maint": 503, "/invalid": 502, "/refused": 503}.get(path, 200)


def test_an_error_page_for_a_client_that_asked_to_close_ends_its_head_with_connection_close(
    scene: Scene,
) -> None:
    with RawConnection("127.0.0.1", scene.main) as connection:
        connection.send(b"GET /maint HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        assert connection.read_until_closed() == PAGE_503.replace(
            b"text/html\r\n\r\n", b"text/html\r\nconnection: close\r\n\r\n"
        )
