"""The acquire script and its Python twin (geoproxy.balance.rank.decide) agree on every row of
one decision table, run against a real Redis."""

from __future__ import annotations

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.rank import decide
from geoproxy.balance.view import ServerView
from tests.support.acquire_script import HOLDER, Call, Listed, call, keys_of
from tests.unit.cases.decide_cases import DECIDE_CASES

KEYS = keys_of("t")


def _views(candidates: list[tuple[str, int, int, int]]) -> tuple[ServerView, ...]:
    return tuple(
        ServerView(name=name, index=i, weight=weight, inflight=inflight, maxconn=maxconn)
        for i, (name, weight, inflight, maxconn) in enumerate(candidates)
    )


@pytest.mark.parametrize("case", DECIDE_CASES, ids=[str(c["id"]) for c in DECIDE_CASES])
def test_the_script_takes_the_server_its_python_twin_takes(
    case: dict[str, object], redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    candidates = case["candidates"]
    assert isinstance(candidates, list)
    views = _views(candidates)
    client.delete(KEYS.inflight, KEYS.worker(HOLDER))
    for view in views:
        if view.inflight:
            client.hset(KEYS.inflight, view.name, view.inflight)
    mode = PickMode(case["mode"])
    listed = Listed(mode.value, [(v.name, v.weight, v.maxconn) for v in views])
    ((chosen, stuck, count, resend),) = call(client, "t", Call(requests=[listed]))
    assert (stuck, resend) == (0, 0), "no stick entry was asked for; a whole list was sent"
    twin = decide(Ranking(mode, views))
    assert chosen == (twin.name if twin else None) == case["expected"]
    if chosen is not None:
        before = next(v.inflight for v in views if v.name == chosen)
        assert int(client.hget(KEYS.inflight, chosen) or 0) == before + 1 == count
        assert client.hget(KEYS.worker(HOLDER), chosen) == "1"
    client.close()
