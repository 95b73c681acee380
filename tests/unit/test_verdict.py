"""HAProxy's health counter (src/check.c), pure: rise/fall transitions, intervals, on-error."""

from __future__ import annotations

import pytest

from geoproxy.balance.view import OperState
from geoproxy.config.model import Location, OnError, Server
from geoproxy.health.verdict import (
    Health,
    after_check,
    after_error_limit,
    initial_health,
    next_interval,
)

UP, DOWN, GOING_UP, GOING_DOWN = (
    OperState.UP,
    OperState.DOWN,
    OperState.GOING_UP,
    OperState.GOING_DOWN,
)


def server(**params: object) -> Server:
    return Server(name="s", host="127.0.0.1", port=1, location=Location("t", 1), **params)  # type: ignore[arg-type]


def run(health: Health, results: str) -> list[OperState]:
    states = []
    for result in results:
        health = after_check(health, result == "+")
        states.append(health.state)
    return states


def test_a_server_starts_up_at_the_top_of_its_counter() -> None:
    health = initial_health(server(rise=2, fall=3))
    assert (health.value, health.state) == (4, UP)


def test_fall_consecutive_failures_take_an_up_server_down() -> None:
    assert run(initial_health(server(rise=2, fall=3)), "---") == [GOING_DOWN, GOING_DOWN, DOWN]


def test_one_success_while_going_down_puts_it_back_up() -> None:
    assert run(initial_health(server(rise=2, fall=3)), "--+") == [GOING_DOWN, GOING_DOWN, UP]


def test_rise_consecutive_successes_bring_a_down_server_up() -> None:
    down = Health(0, 3, 2)
    assert run(down, "+++") == [GOING_UP, GOING_UP, UP]


def test_a_failure_while_going_up_starts_the_climb_again() -> None:
    down = Health(0, 3, 2)
    assert run(down, "++-+++") == [GOING_UP, GOING_UP, DOWN, GOING_UP, GOING_UP, UP]


def test_rise_one_fall_one_flips_on_every_result() -> None:
    assert run(initial_health(server(rise=1, fall=1)), "-+-+") == [DOWN, UP, DOWN, UP]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (OnError.MARK_DOWN, (0, DOWN)),
        (OnError.SUDDEN_DEATH, (2, GOING_DOWN)),
        (OnError.FAIL_CHECK, (3, GOING_DOWN)),
        (OnError.FASTINTER, (4, UP)),
    ],
)
def test_on_error_actions_move_the_same_counter(
    action: OnError, expected: tuple[int, OperState]
) -> None:
    health = after_error_limit(initial_health(server(rise=2, fall=3)), action)
    assert (health.value, health.state) == expected


def test_sudden_death_leaves_exactly_one_failure_before_down() -> None:
    health = after_error_limit(initial_health(server(rise=2, fall=3)), OnError.SUDDEN_DEATH)
    assert after_check(health, passed=False).state is DOWN


def test_intervals_follow_the_state() -> None:
    s = server(inter=2.0, fastinter=0.5, downinter=10.0)
    assert next_interval(s, UP) == 2.0
    assert next_interval(s, GOING_DOWN) == 0.5
    assert next_interval(s, GOING_UP) == 0.5
    assert next_interval(s, DOWN) == 10.0
    plain = server(inter=3.0)
    assert {next_interval(plain, state) for state in OperState} == {3.0}
