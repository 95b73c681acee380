"""Stick counters of a TCP connection (``tcp-request connection|content track-sc*``,
``sc-inc-gpc*``, ``sc-set-gpt*`` in a ``mode tcp`` proxy), with HAProxy 2.6's meaning.

Rules:
1. Tracking counts the connection in ``conn_cur`` (until the session ends), ``conn_cnt`` and
   ``conn_rate``, as HAProxy's ``stream_track_stkctr`` does; no HTTP request is counted.
2. An entry tracked by a connection rule also counts the session (``sess_cnt``,
   ``sess_rate``) once the connection rules accepted it (HAProxy's ``session_count_new``).
3. The counters live on the connection's facts (``TcpFacts.stick``), which the rules' ``Txn``
   shares (``sc_*`` fetches read them); ``end`` stops the tracking with the session's bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from geoproxy.rules.expr import compile_expr
from geoproxy.rules.fetch_counters import STICK_COUNTERS, table_named
from geoproxy.rules.fetch_types import CompileEnv
from geoproxy.rules.outcome import StepContext
from geoproxy.rules.run_counters import update_step
from geoproxy.rules.spec import ScUpdate, TrackSc
from geoproxy.tcp.conditions import txn_of
from geoproxy.tcp.facts import TcpFacts


def counter_action(action: TrackSc | ScUpdate, env: CompileEnv, *,
                   connection: bool) -> Callable[[TcpFacts], None]:
    """What one stick-counter rule does to a connection (rules 1 and 3)."""
    if isinstance(action, ScUpdate):
        step = update_step(action, StepContext(env, env.proxy, response=False))
        return lambda facts: _run(step, facts)
    table = table_named(env, action.table)
    evaluate = compile_expr(action.key, env)
    slot = action.slot

    def track(facts: TcpFacts) -> None:
        stick = facts.stick
        if table is None or stick[slot] is not None:
            return
        value = evaluate(txn_of(facts))
        key = None if value is None else table.key_of(value)
        entry = None if key is None else table.track(key, request=False)
        if entry is not None:
            stick[slot] = (table, entry)
            if connection:
                facts.session_tracked.add(slot)

    return track


def _run(step: Callable[..., object], facts: TcpFacts) -> None:
    step(txn_of(facts))


def count_session(facts: TcpFacts) -> None:
    """The connection rules accepted the connection (rule 2)."""
    for slot in facts.session_tracked:
        found = facts.stick[slot]
        if found is not None:
            found[0].count(found[1], "sess")


def end(facts: TcpFacts, bytes_in: int, bytes_out: int) -> None:
    """The session is over (rule 3)."""
    for slot in range(STICK_COUNTERS):
        found = facts.stick[slot]
        if found is not None:
            facts.stick[slot] = None
            found[0].untrack(found[1], bytes_in, bytes_out)
