"""Counting the commands clients send to Redis, with MONITOR: commands a Lua script runs
inside Redis are marked ``lua`` and left out, so what is counted is what crossed the wire."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_MARK = "geoproxy-monitor-mark"


@contextmanager
def wire_commands(redis_url: str, timeout: float = 10.0) -> Iterator[Counter[str]]:
    """Count, by name, every command clients send while the ``with`` block runs.

    A marker ``ECHO`` opens and closes the window, so nothing before or after is counted and
    every command of the block is in when the block's result is read.
    """
    counted: Counter[str] = Counter()
    with wire_command_lines(redis_url, timeout) as lines:
        yield counted
    counted.update(line.split(" ", 1)[0].upper() for line in lines)


@contextmanager
def wire_command_lines(redis_url: str, timeout: float = 10.0) -> Iterator[list[str]]:
    """Every command clients send while the ``with`` block runs, as MONITOR prints it (name
    and arguments), in order; filled in when the block ends."""
    seen: list[str] = []
    started = threading.Event()
    finished = threading.Event()
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def watch() -> None:
        with client.monitor() as monitor:
            started.set()
            inside = False
            while True:
                entry = monitor.next_command()
                command = entry["command"]
                if _MARK in command:
                    if inside:
                        finished.set()
                        return
                    inside = True
                    continue
                if inside and entry.get("client_type") != "lua":
                    seen.append(command)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert started.wait(timeout), "MONITOR did not start"
    marker = redis.Redis.from_url(redis_url)
    time.sleep(0.05)
    marker.echo(_MARK)
    lines: list[str] = []
    try:
        yield lines
    finally:
        marker.echo(_MARK)
        marker.close()
        finished.wait(timeout)
        watcher.join(timeout)
        client.close()
        lines.extend(seen)
