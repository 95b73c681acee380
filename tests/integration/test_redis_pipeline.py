"""geoproxy.state.pipeline: a gevent worker's Redis calls share one pipelined connection.

Each test runs a monkey-patched child process (as a gunicorn gevent worker is) with the
watchdog started, against the session's real Redis or a silent socket, and prints JSON.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from geoproxy.watchdog import PERIOD
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
PRELUDE = """
from gevent import monkey

monkey.patch_all()

import json
import sys
import time

import gevent
import redis

from geoproxy import watchdog
from geoproxy.state.fastpath import fast_caller

watchdog.start()
ECHO = "return {ARGV[1], KEYS[1]}"
sha = redis.Redis.from_url(sys.argv[1]).script_load(ECHO) if sys.argv[1] != "-" else ""
caller = fast_caller(sys.argv[2] if sys.argv[1] == "-" else sys.argv[1], 0.5)
"""


def run_child(code: str, *args: str) -> Any:
    completed = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_concurrent_calls_each_get_their_own_reply(redis_server: RedisServer) -> None:
    result = run_child(
        """
        def call(i):
            return caller.evalsha(sha, [f"k{i}"], [f"v{i}"])

        jobs = [gevent.spawn(call, i) for i in range(200)]
        gevent.joinall(jobs, timeout=10, raise_error=True)
        print(json.dumps([job.value for job in jobs]))
        """,
        redis_server.url,
    )
    assert result == [[f"v{i}", f"k{i}"] for i in range(200)]


def test_an_error_reply_reaches_its_caller_and_the_others_are_unaffected(
    redis_server: RedisServer,
) -> None:
    result = run_child(
        """
        def call(i):
            try:
                return caller.evalsha(sha if i % 3 else "0" * 40, ["k"], [str(i)])
            except redis.exceptions.NoScriptError:
                return "noscript"

        jobs = [gevent.spawn(call, i) for i in range(30)]
        gevent.joinall(jobs, timeout=10, raise_error=True)
        print(json.dumps([job.value for job in jobs]))
        """,
        redis_server.url,
    )
    assert result == [[str(i), "k"] if i % 3 else "noscript" for i in range(30)]


def test_a_redis_that_goes_silent_times_out_every_waiting_call_then_reconnects() -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        result = run_child(
            """
            def call(i):
                started = time.monotonic()
                try:
                    caller.evalsha("0" * 40, ["k"], [str(i)])
                    return ["answered", 0]
                except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError) as e:
                    return [type(e).__name__, time.monotonic() - started]

            jobs = [gevent.spawn(call, i) for i in range(10)]
            gevent.joinall(jobs, timeout=10, raise_error=True)
            again = call(99)
            print(json.dumps([job.value for job in jobs] + [again]))
            """,
            "-",
            f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
        )
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        silent.close()
    kinds = {kind for kind, _ in result}
    assert kinds <= {"TimeoutError", "ConnectionError"}
    assert all(elapsed < 0.5 + PERIOD + 0.3 for _, elapsed in result)
    assert result[-1][0] == "TimeoutError"  # a new connection, timed out on its own
    assert len(accepted) == 2
