"""``http-check disable-on-404`` (HAProxy's NOLB) against a real Redis: a 404 to the check
keeps the server up for its persistent users but gives it no new load-balanced request, until a
check passes plainly again (haproxy 2.6 shows such servers NOLB, ``L7OKC``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import Config
from geoproxy.health.probe import judge
from geoproxy.state.redis_store import RedisFleetState

CONFIG = parse_text(
    "defaults\n    mode http\nfrontend f\n    bind :80\n    default_backend b\n"
    "backend b\n    option httpchk GET /health\n    http-check disable-on-404\n"
    "    server s1 127.0.0.1:9001 check cookie s1\n", "t.cfg", env={})


def test_a_404_conditionally_passes_only_with_disable_on_404() -> None:
    check = CONFIG.backends[0].httpchk
    assert check is not None and check.disable_on_404
    answer = b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert judge(answer, check) == (True, "L7OKC",
                                    "Layer7 check conditionally passed: 404 Not Found")
    plain = parse_text("defaults\n    mode http\nbackend b\n    option httpchk\n"
                       "    server s 127.0.0.1:1 check\nfrontend f\n    bind :80\n"
                       "    default_backend b\n", "t.cfg", env={}).backends[0].httpchk
    assert plain is not None and judge(answer, plain)[0] is False


@pytest.fixture
def fleet(redis_url: str) -> Iterator[RedisFleetState]:
    state = RedisFleetState(redis_url, "host-a:1")
    state.register(CONFIG.backends)
    yield state
    state.close()


def record(fleet: RedisFleetState, config: Config, code: str) -> None:
    server = config.backends[0].servers[0]
    assert fleet.health.claim_checks("b", ["s1"], "host-a:1") == {"s1"}
    assert fleet.health.record_check("b", server, "host-a:1", (True, code, "", 1)) is not None
    fleet.refresh()


def test_a_nolb_server_keeps_persistent_users_and_gets_no_new_ones(
    fleet: RedisFleetState,
) -> None:
    record(fleet, CONFIG, "L7OKC")
    server = fleet.view("b").servers[0]
    assert server.is_running and server.accepts_persistent and not server.is_usable
    record(fleet, CONFIG, "L7OK")
    assert fleet.view("b").servers[0].is_usable
