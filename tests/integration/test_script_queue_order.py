"""acquire.lua with a backend's queue keys: a newcomer never takes a slot that a waiting
request is owed (HAProxy queues a request behind the others, and skips a server whose own queue
is not empty)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.acquire_script import Call, Listed, call, keys_of

KEYS = keys_of("t")
INFLIGHT, QUEUE = KEYS.inflight, KEYS.queue
server_queue = KEYS.server_queue


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def acquire(client: redis.Redis, candidates: list[tuple[str, int]], queues: bool = True) -> str:
    """Run acquire.lua for a first-with-room ranking of (name, maxconn) of a backend with
    queues (``queues``; else as one without maxconn would); the server taken, or "" for none."""
    listed = Listed("first", [(name, 1, maxconn) for name, maxconn in candidates])
    return call(client, "t", Call(requests=[listed], queues=queues))[0][0] or ""


def wait_in(client: redis.Redis, queue: str, ticket: str) -> None:
    """A ticket in ``queue``, as queue.lua writes it: its place, and its deadline."""
    client.zadd(queue, {ticket: 1})
    client.hset(KEYS.queue_deadlines, ticket, 2**40)


def test_a_newcomer_takes_no_slot_while_the_backend_queue_waits_for_it(
    client: redis.Redis,
) -> None:
    client.hset(INFLIGHT, mapping={"a": 1, "b": 0})
    wait_in(client, QUEUE, "ticket-1")
    assert acquire(client, [("a", 1), ("b", 1)]) == "", "b's free slot is the ticket's"
    assert acquire(client, [("a", 1), ("b", 1)], queues=False) == "b", "a backend without maxconn"


def test_a_newcomer_takes_a_slot_when_more_are_free_than_are_waited_for(
    client: redis.Redis,
) -> None:
    wait_in(client, QUEUE, "ticket-1")
    assert acquire(client, [("a", 1), ("b", 1)]) == "a"


def test_a_server_whose_own_queue_waits_is_skipped(client: redis.Redis) -> None:
    wait_in(client, server_queue("a"), "ticket-1")
    assert acquire(client, [("a", 1), ("b", 1)]) == "b"
    assert acquire(client, [("a", 2)]) == "a", "a second slot of a is free for anyone"


def test_a_server_without_maxconn_serves_newcomers_whatever_waits(client: redis.Redis) -> None:
    wait_in(client, QUEUE, "ticket-1")
    client.hset(INFLIGHT, "a", 5)
    assert acquire(client, [("a", 1), ("c", 0)]) == "c"
