"""geoproxy.watchdog: the timeouts of a gevent worker's request path, without a timer per wait.

Each test runs a monkey-patched child process (as a gunicorn gevent worker is) that starts the
watchdog and prints what it saw as JSON.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from geoproxy.watchdog import PERIOD
from tests.integration.forward_scripted import ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
SLACK = 0.15  # scheduling on a busy two-core machine


def run_child(code: str, *args: str) -> Any:
    prelude = textwrap.dedent(
        """
        from gevent import monkey

        monkey.patch_all()

        import json
        import socket
        import sys
        import time

        import gevent

        from geoproxy import watchdog

        watchdog.start()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_a_guarded_receive_that_gets_nothing_times_out_within_a_sweep_of_its_deadline() -> None:
    result = run_child(
        """
        left, right = socket.socketpair()
        guard = watchdog.new_guard()
        started = time.monotonic()
        guard.arm(0.3)
        try:
            left.recv(10)
            outcome = "returned"
        except TimeoutError:
            outcome = "timeout"
        finally:
            guard.disarm()
        print(json.dumps([outcome, time.monotonic() - started]))
        """
    )
    outcome, elapsed = result
    assert outcome == "timeout"
    assert 0.3 <= elapsed < 0.3 + PERIOD + SLACK


def test_a_call_that_returned_in_time_is_never_interrupted_nor_what_follows_it() -> None:
    result = run_child(
        """
        left, right = socket.socketpair()
        guard = watchdog.new_guard()
        right.send(b"x")
        guard.arm(0.05)
        try:
            data = left.recv(10)
        finally:
            guard.disarm()
        gevent.sleep(0.3)  # well past the deadline: nothing may be thrown in here
        guard.arm(None)  # no limit: not even listed
        right.send(b"y")
        more = left.recv(10)
        print(json.dumps([data.decode(), more.decode(), len(watchdog.active().armed)]))
        """
    )
    assert result == ["x", "y", 0]


def test_many_greenlets_each_time_out_alone_and_the_others_finish() -> None:
    result = run_child(
        """
        def wait(timeout, answer):
            left, right = socket.socketpair()
            guard = watchdog.new_guard()
            if answer:
                gevent.spawn_later(0.1, right.send, b"z")
            guard.arm(timeout)
            try:
                return left.recv(1).decode()
            except TimeoutError:
                return "timeout"
            finally:
                guard.disarm()

        jobs = [gevent.spawn(wait, 0.2, i % 2 == 0) for i in range(20)]
        gevent.joinall(jobs, timeout=5, raise_error=True)
        print(json.dumps([job.value for job in jobs]))
        """
    )
    assert result == ["z" if i % 2 == 0 else "timeout" for i in range(20)]


def _read_and_stall(conn: socket.socket) -> None:
    """Read the request, answer nothing, until the client (or the server's stop) closes."""
    while conn.recv(65536):
        pass


def test_timeout_server_is_kept_by_the_watchdog_within_a_sweep() -> None:
    with ScriptedServer(_read_and_stall) as server:
        result = run_child(
            """
            from geoproxy.errors import ServerTimeout
            from geoproxy.forward import BodyFraming, Framing, ServerPool, send

            pool = ServerPool("127.0.0.1", int(sys.argv[1]))
            head = b"GET / HTTP/1.1\\r\\nhost: h\\r\\n\\r\\n"
            started = time.monotonic()
            try:
                send(pool, head, BodyFraming(Framing.NONE), None,
                     connect_timeout=1.0, server_timeout=0.3, is_head=False)
                outcome = "answered"
            except ServerTimeout:
                outcome = "timeout"
            print(json.dumps([outcome, time.monotonic() - started]))
            """,
            str(server.port),
        )
    outcome, elapsed = result
    assert outcome == "timeout"
    assert 0.3 <= elapsed < 0.3 + PERIOD + SLACK
