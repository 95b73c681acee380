"""The decision table of the acquire script, as data: ``rank.decide`` and the Lua script must
agree on every row.

Each case has:
- ``id``: what the row shows, as a sentence fragment;
- ``mode``: ``"first"`` (PickMode.FIRST_WITH_ROOM) or ``"least"`` (PickMode.LEAST_LOADED), the
  values of ``geoproxy.balance.policy.PickMode``;
- ``candidates``: the ranking, in order, as ``(name, weight, inflight, maxconn)``; a maxconn of
  0 means "no limit";
- ``expected``: the name of the server taken, or None when every candidate is full.

The rule: FIRST_WITH_ROOM takes the first candidate with ``maxconn == 0 or inflight <
maxconn``. LEAST_LOADED takes, among candidates with room, the lowest ``(inflight + 1) /
weight``, compared as ``(a.inflight + 1) * b.weight < (b.inflight + 1) * a.weight`` (so a
weight of 0 is an infinite load), ties to the earlier candidate.
"""

from __future__ import annotations

Candidate = tuple[str, int, int, int]

DECIDE_CASES: list[dict[str, object]] = [
    # ---- FIRST_WITH_ROOM
    {
        "id": "first mode takes the first candidate when it has room",
        "mode": "first",
        "candidates": [("s1", 1, 0, 0), ("s2", 1, 0, 0)],
        "expected": "s1",
    },
    {
        "id": "first mode ignores load: a busier first candidate with room still wins",
        "mode": "first",
        "candidates": [("s1", 1, 9, 10), ("s2", 1, 0, 10)],
        "expected": "s1",
    },
    {
        "id": "first mode skips a candidate at its maxconn",
        "mode": "first",
        "candidates": [("s1", 1, 2, 2), ("s2", 1, 0, 1)],
        "expected": "s2",
    },
    {
        "id": "first mode skips a candidate above its maxconn (maxconn lowered at run time)",
        "mode": "first",
        "candidates": [("s1", 1, 7, 5), ("s2", 1, 3, 0)],
        "expected": "s2",
    },
    {
        "id": "first mode skips every full candidate until one has room",
        "mode": "first",
        "candidates": [("s1", 1, 1, 1), ("s2", 3, 4, 4), ("s3", 2, 0, 1), ("s4", 1, 0, 0)],
        "expected": "s3",
    },
    {
        "id": "first mode treats maxconn 0 as no limit",
        "mode": "first",
        "candidates": [("s1", 1, 100000, 0)],
        "expected": "s1",
    },
    {
        "id": "first mode gives None when every candidate is full",
        "mode": "first",
        "candidates": [("s1", 1, 1, 1), ("s2", 1, 3, 3)],
        "expected": None,
    },
    {
        "id": "first mode gives None for an empty ranking",
        "mode": "first",
        "candidates": [],
        "expected": None,
    },
    {
        "id": "first mode takes a weight 0 candidate it is given (persistence may rank one)",
        "mode": "first",
        "candidates": [("s1", 0, 0, 0), ("s2", 1, 0, 0)],
        "expected": "s1",
    },
    # ---- LEAST_LOADED
    {
        "id": "least mode takes the lowest inflight among equal weights",
        "mode": "least",
        "candidates": [("s1", 1, 3, 0), ("s2", 1, 1, 0), ("s3", 1, 2, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode breaks a tie to the earlier candidate",
        "mode": "least",
        "candidates": [("s1", 1, 1, 0), ("s2", 1, 1, 0)],
        "expected": "s1",
    },
    {
        "id": "least mode breaks a tie to the earlier candidate whatever the names",
        "mode": "least",
        "candidates": [("s2", 1, 0, 0), ("s1", 1, 0, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode divides by weight: 5 inflight at weight 3 beats 2 at weight 1",
        "mode": "least",
        "candidates": [("s1", 1, 2, 0), ("s2", 3, 5, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode counts the request being placed: idle heavy server beats idle light",
        "mode": "least",
        "candidates": [("s1", 1, 0, 0), ("s2", 2, 0, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode counts the request being placed: 1 at weight 3 beats 0 at weight 1",
        "mode": "least",
        "candidates": [("s1", 1, 0, 0), ("s2", 3, 1, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode keeps an exact tie across weights with the earlier candidate",
        "mode": "least",
        "candidates": [("s1", 2, 3, 0), ("s2", 1, 1, 0)],
        "expected": "s1",
    },
    {
        "id": "least mode keeps an exact tie across weights with the earlier one, reversed",
        "mode": "least",
        "candidates": [("s2", 1, 1, 0), ("s1", 2, 3, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode skips the least loaded candidate when it is full",
        "mode": "least",
        "candidates": [("s1", 1, 2, 2), ("s2", 1, 5, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode takes the least loaded among those with room",
        "mode": "least",
        "candidates": [("s1", 1, 0, 0), ("s2", 1, 4, 4), ("s3", 1, 3, 10), ("s4", 1, 2, 3)],
        "expected": "s1",
    },
    {
        "id": "least mode ignores the load of full candidates",
        "mode": "least",
        "candidates": [("s1", 1, 1, 1), ("s2", 1, 3, 0), ("s3", 1, 2, 0)],
        "expected": "s3",
    },
    {
        "id": "least mode gives None when every candidate is full",
        "mode": "least",
        "candidates": [("s1", 1, 1, 1), ("s2", 5, 10, 10)],
        "expected": None,
    },
    {
        "id": "least mode gives None for an empty ranking",
        "mode": "least",
        "candidates": [],
        "expected": None,
    },
    {
        "id": "least mode takes a lone candidate with room whatever its load",
        "mode": "least",
        "candidates": [("s1", 1, 500, 0)],
        "expected": "s1",
    },
    {
        "id": "least mode treats weight 0 as infinitely loaded",
        "mode": "least",
        "candidates": [("s1", 0, 0, 0), ("s2", 1, 100, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode takes a weight 0 candidate when it is the only one with room",
        "mode": "least",
        "candidates": [("s1", 1, 1, 1), ("s2", 0, 0, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode ties weight 0 candidates to the earlier one",
        "mode": "least",
        "candidates": [("s1", 0, 9, 0), ("s2", 0, 0, 0)],
        "expected": "s1",
    },
    {
        "id": "least mode compares exactly where floating point would round (10001/256 vs 39)",
        "mode": "least",
        "candidates": [("s1", 256, 10000, 0), ("s2", 1, 38, 0)],
        "expected": "s2",
    },
    {
        "id": "least mode compares exactly at large counts (tie at 1000000/250 = 4000)",
        "mode": "least",
        "candidates": [("s1", 250, 999999, 0), ("s2", 1, 3999, 0)],
        "expected": "s1",
    },
    {
        "id": "least mode prefers the heavier server at equal inflight",
        "mode": "least",
        "candidates": [("s1", 1, 4, 0), ("s2", 2, 4, 0), ("s3", 3, 4, 0)],
        "expected": "s3",
    },
]
