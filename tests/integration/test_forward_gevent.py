"""The client cooperates with gevent as gunicorn's gevent workers run it: monkey-patched
sockets, many requests in flight in one process, timeouts that never block the hub.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.forward_scripted import Reader, ScriptedServer, response

ROOT = Path(__file__).resolve().parents[2]

CLIENT = r"""
from gevent import monkey

monkey.patch_all()

import io
import json
import sys
import time

import gevent

from geoproxy.errors import ServerTimeout
from geoproxy.forward import BodyFraming, Framing, ServerPool, send

pool = ServerPool("127.0.0.1", int(sys.argv[1]))


def fetch(path, body=b"", timeout=5.0):
    head = b"POST %s HTTP/1.1\r\nhost: h\r\ncontent-length: %d\r\n\r\n" % (path, len(body))
    framing = BodyFraming(Framing.LENGTH, len(body))
    upstream = send(
        pool, head, framing, io.BytesIO(body),
        connect_timeout=2.0, server_timeout=timeout, is_head=False,
    )
    try:
        return b"".join(upstream).decode()
    finally:
        upstream.close()


def concurrent_round():
    started = time.monotonic()
    jobs = [gevent.spawn(fetch, b"/slow") for _ in range(20)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    return time.monotonic() - started, [job.value for job in jobs]


result = {}
result["first_round"], result["bodies"] = concurrent_round()
result["opened_after_first"] = pool.opened
result["second_round"], _ = concurrent_round()
result["opened_after_second"] = pool.opened

ticks = []


def tick():
    for _ in range(100):
        gevent.sleep(0.01)
        ticks.append(time.monotonic())


ticker = gevent.spawn(tick)
try:
    fetch(b"/never", timeout=0.3)
    result["timeout"] = "none"
except ServerTimeout:
    result["timeout"] = "ServerTimeout"
result["ticks_during_timeout"] = len(ticks)
ticker.kill()

pool.close()  # so that /bye gets a connection of its own, which the server then closes
assert fetch(b"/bye") == "bye"
gevent.sleep(0.1)
opened = pool.opened
result["after_stale"] = fetch(b"/echo", body=b"payload")
result["opened_for_stale"] = pool.opened - opened
print(json.dumps(result))
"""


def scripted(conn: socket.socket) -> None:
    reader = Reader(conn)
    while (request := reader.read_request()) is not None:
        path = request.request_line.split(" ")[1]
        if path == "/slow":
            time.sleep(0.3)
            conn.sendall(response(200, b"slow"))
        elif path == "/never":
            while conn.recv(65536):
                pass
            return
        elif path == "/bye":
            conn.sendall(response(200, b"bye"))
            return
        else:
            conn.sendall(response(200, request.body))


def test_client_under_gevent_runs_requests_concurrently_and_reuses_connections() -> None:
    with ScriptedServer(scripted) as server:
        run = subprocess.run(
            [sys.executable, "-c", CLIENT, str(server.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["bodies"] == ["slow"] * 20
    # twenty requests of 0.3 s each, in one process: together, not one after the other
    assert result["first_round"] < 2.0
    assert result["second_round"] < 2.0
    assert result["opened_after_first"] == 20
    assert result["opened_after_second"] == 20
    assert result["timeout"] == "ServerTimeout"
    # the hub kept running other greenlets while one waited for its server
    assert result["ticks_during_timeout"] >= 10
    # the idle connection the server closed was detected, not used for a request with a body
    assert result["after_stale"] == "payload"
    assert result["opened_for_stale"] == 1
    assert server.accepted == 22
