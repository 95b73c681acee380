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
def wire_log(redis_url: str, timeout: float = 10.0) -> Iterator[list[list[str]]]:
    """Record every command clients send while the ``with`` block runs, as its words
    (``["EVALSHA", "<sha>", "4", ...]``), in the order Redis received them.

    A marker ``ECHO`` opens and closes the window, so nothing before or after is recorded and
    every command of the block is in when the block's result is read.
    """
    recorded: list[list[str]] = []
    started = threading.Event()
    finished = threading.Event()
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def watch() -> None:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
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
                    words = command.split(" ")
                    recorded.append([words[0].upper(), *words[1:]])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert started.wait(timeout), "MONITOR did not start"
    marker = redis.Redis.from_url(redis_url)
    time.sleep(0.05)
    marker.echo(_MARK)
    try:
        yield recorded
    finally:
        marker.echo(_MARK)
        marker.close()
        finished.wait(timeout)
        watcher.join(timeout)
        client.close()


@contextmanager
def wire_command_lines(redis_url: str, timeout: float = 10.0) -> Iterator[list[str]]:
    """Every command clients send while the ``with`` block runs, as one line (name and
    arguments), in order; filled in when the block ends."""
    lines: list[str] = []
    with wire_log(redis_url, timeout) as recorded:
        yield lines
    lines.extend(" ".join(words) for words in recorded)


@contextmanager
def wire_commands(redis_url: str, timeout: float = 10.0) -> Iterator[Counter[str]]:
    """Count, by name, every command clients send while the ``with`` block runs (see
    ``wire_log``); the counts are complete once the block has ended."""
    counted: Counter[str] = Counter()
    with wire_log(redis_url, timeout) as recorded:
        yield counted
    counted.update(words[0] for words in recorded)


def round_trips(recorded: list[list[str]], names: dict[str, str] | None = None) -> Counter[str]:
    """What ``wire_log`` recorded, by round trip: a MULTI ... EXEC block is one
    ``"transaction"``, an EVALSHA counts under ``names[sha]`` (else ``"script"``), any other
    command under its name."""
    kinds: Counter[str] = Counter()
    in_transaction = False
    for words in recorded:
        if words[0] == "MULTI":
            in_transaction = True
            kinds["transaction"] += 1
        elif words[0] == "EXEC":
            in_transaction = False
        elif in_transaction:
            continue
        elif words[0] == "EVALSHA":
            kinds[(names or {}).get(words[1].strip('"'), "script")] += 1
        else:
            kinds[words[0]] += 1
    return kinds
