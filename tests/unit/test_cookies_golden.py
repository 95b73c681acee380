"""Every exchange haproxy 2.6 was recorded answering (tests/unit/cases/cookies/*.json), replayed
through geoproxy's cookie persistence: same routing, same cookie log letters, same Cookie header
at the server, same Set-Cookie and Cache-Control headers at the client. Cases marked
``geoproxy_differs`` assert geoproxy's documented difference instead (see cookies.py)."""

from __future__ import annotations

import pytest

from tests.unit.cookie_cases import CASES, Exchange, expectation, load, replay

ALL = [
    pytest.param(e, id=e.id) for e in load(*sorted(path.stem for path in CASES.glob("*.json")))
]


@pytest.mark.parametrize("exchange", ALL)
def test_geoproxy_answers_as_haproxy_recorded(exchange: Exchange) -> None:
    expected = expectation(exchange)
    got = replay(exchange)
    assert got == {k: v for k, v in expected.items() if k != "answered_by"}
