"""``option abortonclose`` in the queue, on a real Redis: a waiter whose client left takes its
ticket out at once (nothing is left for the queue script to serve), and one whose client is
still there keeps its place and gets the slot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.config.model import Backend, Location, Server
from geoproxy.proxy.queueing import QueueOutcome, wait_in_queue
from geoproxy.state.redis_store import RedisFleetState
from geoproxy.state.store import Lease

HERE = Location("test", 1)
BACKEND = Backend(
    name="app",
    location=HERE,
    servers=(Server(name="s1", host="127.0.0.1", port=1, location=HERE, maxconn=1),),
)


@pytest.fixture
def fleet(redis_url: str) -> Iterator[RedisFleetState]:
    state = RedisFleetState(redis_url, "host-a:1")
    state.register([BACKEND])
    yield state
    state.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def _ranking(fleet: RedisFleetState) -> Ranking:
    view = fleet.view("app").server("s1")
    assert view is not None
    return Ranking(PickMode.FIRST_WITH_ROOM, (view,))


def _full(fleet: RedisFleetState) -> Lease:
    lease = fleet.acquire("app", _ranking(fleet))
    assert lease is not None
    return lease


def test_a_waiter_whose_client_left_takes_its_ticket_out(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    _full(fleet)
    asked: list[int] = []

    def abandoned() -> bool:
        asked.append(len(asked))
        return len(asked) == 3  # the client leaves while the request waits

    outcome = wait_in_queue(fleet, BACKEND, _ranking(fleet), abandoned=abandoned,
                            sleep=lambda _: None)
    assert outcome is QueueOutcome.ABORTED
    assert len(asked) == 3, "asked between tries, and no more once the client left"
    assert not client.zcard("gp:{app}:queue"), "no ticket left behind"


def test_a_waiter_whose_client_stays_gets_the_slot_when_it_frees(
    fleet: RedisFleetState, client: redis.Redis
) -> None:
    held = _full(fleet)
    tries: list[int] = []

    def sleep(_: float) -> None:
        tries.append(1)
        if len(tries) == 3:
            fleet.release(held)
            fleet.flush()  # the slot is back in Redis now, not at the flusher's next turn

    outcome = wait_in_queue(fleet, BACKEND, _ranking(fleet), abandoned=lambda: False,
                            sleep=sleep)
    assert isinstance(outcome, Lease) and outcome.server == "s1"
    assert not client.zcard("gp:{app}:queue")
