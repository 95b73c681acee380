"""acquire.lua with a backend's queue keys: a newcomer never takes a slot that a waiting
request is owed (HAProxy queues a request behind the others, and skips a server whose own queue
is not empty)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from geoproxy.state.scripts import Scripts

INFLIGHT, TOTAL, MINE, WORKERS = (
    "gp:{t}:inflight",
    "gp:{t}:total",
    "gp:{t}:w:tester",
    "gp:{t}:workers",
)
QUEUE = "gp:{t}:queue"


def server_queue(name: str) -> str:
    return f"gp:{{t}}:queue:{name}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def acquire(client: redis.Redis, candidates: list[tuple[str, int]], queues: bool = True) -> str:
    """Run acquire.lua for a first-with-room ranking of (name, maxconn); the server taken, or
    "" for none."""
    keys = [INFLIGHT, TOTAL, MINE, WORKERS]
    if queues:
        keys += [QUEUE] + [server_queue(name) for name, _ in candidates]
    args: list[object] = ["tester", 1000, "first", len(candidates)]
    for name, maxconn in candidates:
        args += [name, 1, maxconn]
    args.append(0)
    reply = Scripts().call(client, "acquire", keys, args)
    return reply[0] or ""


def test_a_newcomer_takes_no_slot_while_the_backend_queue_waits_for_it(
    client: redis.Redis,
) -> None:
    client.hset(INFLIGHT, mapping={"a": 1, "b": 0})
    client.zadd(QUEUE, {"ticket-1": 1})
    assert acquire(client, [("a", 1), ("b", 1)]) == "", "b's free slot is the ticket's"
    assert acquire(client, [("a", 1), ("b", 1)], queues=False) == "b", "without queue keys"


def test_a_newcomer_takes_a_slot_when_more_are_free_than_are_waited_for(
    client: redis.Redis,
) -> None:
    client.zadd(QUEUE, {"ticket-1": 1})
    assert acquire(client, [("a", 1), ("b", 1)]) == "a"


def test_a_server_whose_own_queue_waits_is_skipped(client: redis.Redis) -> None:
    client.zadd(server_queue("a"), {"ticket-1": 1})
    assert acquire(client, [("a", 1), ("b", 1)]) == "b"
    assert acquire(client, [("a", 2)]) == "a", "a second slot of a is free for anyone"


def test_a_server_without_maxconn_serves_newcomers_whatever_waits(client: redis.Redis) -> None:
    client.zadd(QUEUE, {"ticket-1": 1})
    client.hset(INFLIGHT, "a", 5)
    assert acquire(client, [("a", 1), ("c", 0)]) == "c"
