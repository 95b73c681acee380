"""eligible() and decide(): HAProxy's usable-server and backup rules (``backup``,
``option allbackups``), and the decision rule the Redis acquire script mirrors."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.balance.rank import decide, eligible
from geoproxy.balance.view import AdminState, BackendView, OperState, ServerView


def _load_cases() -> list[dict[str, Any]]:
    path = Path(__file__).parent / "cases" / "decide_cases.py"
    spec = importlib.util.spec_from_file_location("decide_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases: list[dict[str, Any]] = module.DECIDE_CASES
    return cases


DECIDE_CASES = _load_cases()


def view(*servers: ServerView) -> BackendView:
    return BackendView("be", servers)


def server(name: str, index: int, **kwargs: Any) -> ServerView:
    return ServerView(name=name, index=index, weight=kwargs.pop("weight", 1), **kwargs)


def names(servers: tuple[ServerView, ...]) -> list[str]:
    return [s.name for s in servers]


# --------------------------------------------------------------------------------------------
# eligible


def test_all_usable_primaries_are_eligible_in_configuration_order() -> None:
    v = view(server("a", 0), server("b", 1), server("c", 2))
    assert names(eligible(v, False)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("change", "is_eligible"),
    [
        ({"oper": OperState.UP}, True),
        ({"oper": OperState.GOING_DOWN}, True),
        ({"oper": OperState.DOWN}, False),
        ({"oper": OperState.GOING_UP}, False),
        ({"admin": AdminState.READY}, True),
        ({"admin": AdminState.DRAIN}, False),
        ({"admin": AdminState.MAINT}, False),
        ({"weight": 0}, False),
        ({"weight": 1}, True),
        ({"weight": 256}, True),
        ({"inflight": 10, "maxconn": 10}, True),
        ({"oper": OperState.GOING_DOWN, "admin": AdminState.DRAIN}, False),
    ],
)
def test_a_primary_is_eligible_only_when_running_ready_and_weighted(
    change: dict[str, Any], is_eligible: bool
) -> None:
    v = view(server("a", 0), replace(server("b", 1), **change))
    assert ("b" in names(eligible(v, False))) is is_eligible


def test_a_full_server_stays_eligible_because_the_script_decides_on_live_counts() -> None:
    v = view(server("a", 0, inflight=5, maxconn=5))
    assert names(eligible(v, False)) == ["a"]


def test_backups_are_not_eligible_while_a_primary_is_usable() -> None:
    v = view(server("a", 0, oper=OperState.DOWN), server("b", 1), server("bk", 2, backup=True))
    assert names(eligible(v, False)) == ["b"]
    assert names(eligible(v, True)) == ["b"]


def test_without_usable_primary_only_the_first_usable_backup_is_eligible() -> None:
    v = view(
        server("a", 0, oper=OperState.DOWN),
        server("bk1", 1, backup=True),
        server("bk2", 2, backup=True),
    )
    assert names(eligible(v, False)) == ["bk1"]


def test_the_first_backup_is_the_first_usable_one_in_configuration_order() -> None:
    v = view(
        server("bk1", 0, backup=True, oper=OperState.DOWN),
        server("a", 1, admin=AdminState.MAINT),
        server("bk2", 2, backup=True, weight=0),
        server("bk3", 3, backup=True),
        server("bk4", 4, backup=True),
    )
    assert names(eligible(v, False)) == ["bk3"]


def test_allbackups_makes_every_usable_backup_eligible() -> None:
    v = view(
        server("a", 0, oper=OperState.DOWN),
        server("bk1", 1, backup=True),
        server("bk2", 2, backup=True, admin=AdminState.DRAIN),
        server("bk3", 3, backup=True),
    )
    assert names(eligible(v, True)) == ["bk1", "bk3"]


def test_primaries_in_drain_hand_over_to_the_backups() -> None:
    v = view(
        server("a", 0, admin=AdminState.DRAIN),
        server("b", 1, admin=AdminState.DRAIN),
        server("bk", 2, backup=True),
    )
    assert names(eligible(v, False)) == ["bk"]


def test_primaries_with_weight_zero_hand_over_to_the_backups() -> None:
    v = view(server("a", 0, weight=0), server("bk", 1, backup=True))
    assert names(eligible(v, False)) == ["bk"]


def test_nothing_is_eligible_when_no_server_is_usable() -> None:
    v = view(server("a", 0, oper=OperState.DOWN), server("bk", 1, backup=True, weight=0))
    assert eligible(v, False) == ()
    assert eligible(v, True) == ()


def test_an_empty_backend_has_nothing_eligible() -> None:
    assert eligible(view(), False) == ()


def test_eligible_returns_the_views_themselves() -> None:
    a = server("a", 0, inflight=3)
    assert eligible(view(a), False)[0] is a


_server_states = st.builds(
    lambda backup, oper, admin, weight: (backup, oper, admin, weight),
    st.booleans(),
    st.sampled_from(OperState),
    st.sampled_from(AdminState),
    st.sampled_from([0, 1, 2, 7]),
)


@given(st.lists(_server_states, max_size=8), st.booleans())
def test_eligible_follows_the_backup_rule_for_any_backend(
    states: list[tuple[bool, OperState, AdminState, int]], allbackups: bool
) -> None:
    servers = tuple(
        ServerView(f"s{i}", i, weight, backup=backup, oper=oper, admin=admin)
        for i, (backup, oper, admin, weight) in enumerate(states)
    )
    usable = [s for s in servers if s.is_usable]
    primaries = [s for s in usable if not s.backup]
    backups = [s for s in usable if s.backup]
    if primaries:
        expected = primaries
    elif allbackups:
        expected = backups
    else:
        expected = backups[:1]
    assert list(eligible(BackendView("be", servers), allbackups)) == expected


# --------------------------------------------------------------------------------------------
# decide


def _ranking(case: dict[str, Any]) -> Ranking:
    candidates = tuple(
        ServerView(name, i, weight, inflight=inflight, maxconn=maxconn)
        for i, (name, weight, inflight, maxconn) in enumerate(case["candidates"])
    )
    return Ranking(PickMode(case["mode"]), candidates)


@pytest.mark.parametrize("case", DECIDE_CASES, ids=[c["id"] for c in DECIDE_CASES])
def test_decide_follows_the_shared_decision_table(case: dict[str, Any]) -> None:
    chosen = decide(_ranking(case))
    assert (None if chosen is None else chosen.name) == case["expected"]


def test_the_decision_table_covers_both_modes_and_the_none_answer() -> None:
    assert {c["mode"] for c in DECIDE_CASES} == {m.value for m in PickMode}
    assert any(c["expected"] is None for c in DECIDE_CASES if c["mode"] == "first")
    assert any(c["expected"] is None for c in DECIDE_CASES if c["mode"] == "least")
    assert len({c["id"] for c in DECIDE_CASES}) == len(DECIDE_CASES)


def test_decide_returns_the_candidate_view_itself() -> None:
    a = ServerView("a", 0, 1, inflight=2)
    assert decide(Ranking(PickMode.LEAST_LOADED, (a,))) is a


# (weight, inflight, maxconn) of each candidate
_candidates = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 20), st.integers(0, 20)), max_size=7
)


@given(_candidates)
def test_least_loaded_takes_a_candidate_no_other_with_room_beats(
    raw: list[tuple[int, int, int]],
) -> None:
    candidates = tuple(
        ServerView(f"s{i}", i, w, inflight=n, maxconn=m) for i, (w, n, m) in enumerate(raw)
    )
    chosen = decide(Ranking(PickMode.LEAST_LOADED, candidates))
    with_room = [c for c in candidates if c.has_room]
    if not with_room:
        assert chosen is None
        return
    assert chosen is not None and chosen.has_room

    def load(s: ServerView) -> float:
        return (s.inflight + 1) / s.weight if s.weight else float("inf")

    assert all(load(chosen) <= load(c) for c in with_room)
    earlier = candidates[: candidates.index(chosen)]
    assert all(load(c) > load(chosen) for c in earlier if c.has_room)


@given(_candidates)
def test_first_with_room_takes_the_first_candidate_with_room(
    raw: list[tuple[int, int, int]],
) -> None:
    candidates = tuple(
        ServerView(f"s{i}", i, w, inflight=n, maxconn=m) for i, (w, n, m) in enumerate(raw)
    )
    chosen = decide(Ranking(PickMode.FIRST_WITH_ROOM, candidates))
    expected = next((c for c in candidates if c.has_room), None)
    assert chosen is expected
