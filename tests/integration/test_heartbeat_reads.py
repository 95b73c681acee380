"""What the heartbeat reads (heartbeat.py rule 5): while the watcher tracks every write to the
server hashes, a worker's heartbeat reads them only every ``FULL_EVERY``-th time (and at once
on a message), else rebuilds its view from the last reading; a write is still seen at once.
Real Redis, real background loops; commands counted on the wire against the heartbeats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from geoproxy.balance.view import AdminState
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.heartbeat import FULL_EVERY
from geoproxy.state.redis_store import RedisFleetState
from geoproxy.state.scripts import script_sha
from tests.support.redis_monitor import wire_log

HERE = Location("test", 1)
NAMES = ("s1", "s2", "s3")
BACKEND = Backend(
    name="app",
    location=HERE,
    servers=tuple(Server(name=n, host="127.0.0.1", port=1, location=HERE) for n in NAMES),
)
HEARTBEAT = script_sha("heartbeat")


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def admin_of(state: RedisFleetState, name: str) -> AdminState | None:
    view = state.view("app").server(name)
    return None if view is None else view.admin


@pytest.fixture
def worker(redis_url: str) -> Iterator[RedisFleetState]:
    master = RedisFleetState(redis_url, "master")
    master.register([BACKEND])
    state = RedisFleetState(redis_url, "host-a:1")
    state.attach([BACKEND])
    state.start()
    try:
        watcher = state.watcher
        assert watcher is not None
        wait_for(watcher.watching.is_set, 5.0, "the watcher never tracked the server hashes")
        yield state
    finally:
        state.stop()
        state.close()
        master.close()


def test_a_watched_worker_reads_the_server_hashes_at_one_heartbeat_in_four(
    worker: RedisFleetState, redis_url: str
) -> None:
    with wire_log(redis_url) as recorded:
        time.sleep(3.2)  # six heartbeats or so
    beats = sum(1 for words in recorded if words[:2] == ["EVALSHA", HEARTBEAT])
    reads = sum(1 for words in recorded
                if words[0] == "HMGET" and words[1].startswith("gp:{app}:srv:"))
    assert beats >= FULL_EVERY, recorded
    # every heartbeat would read len(NAMES) hashes; one in FULL_EVERY does (either end of the
    # window may hold one more)
    assert reads <= len(NAMES) * (beats // FULL_EVERY + 1), (beats, reads)
    assert reads < len(NAMES) * beats


def test_a_write_between_two_readings_is_still_seen_at_once(
    worker: RedisFleetState, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.hset("gp:{app}:srv:s2", "admin", "maint")
        wait_for(lambda: admin_of(worker, "s2") is AdminState.MAINT, 0.4,
                 "the worker did not see s2 in maintenance within 0.4 s")
        # the views rebuilt from the last reading keep it, heartbeat after heartbeat
        time.sleep(1.2)
        assert admin_of(worker, "s2") is AdminState.MAINT
    finally:
        client.hset("gp:{app}:srv:s2", "admin", "ready")
        client.close()
