"""The stick-counter actions (manual 4.2): ``track-sc0|1|2 KEY [table T]``, ``sc-inc-gpc0(N)``,
``sc-inc-gpc1(N)``, ``sc-inc-gpc(I,N)``, ``sc-set-gpt0(N) VALUE``, ``sc-set-gpt(I,N) VALUE``:
their parsers (load time) and steps (compiled once per process), with HAProxy 2.6's meaning
(pure).

Rules:
1. A request has three counter sets (HAProxy's MAX_SESS_STKCTR); the first ``track-scN``
   rule that runs for set N with a key that converts to the table's type starts tracking that
   entry, later ones for the same set do nothing. Tracking counts the request at once:
   ``conn_cur`` (until the request ends), ``conn_cnt``, ``conn_rate``, ``http_req_cnt``,
   ``http_req_rate``; in ``http-response`` rules also an error (4xx) or a failure (5xx but
   501 and 505) of the response already there, as HAProxy does when tracking starts late.
2. ``sc-inc-*`` and ``sc-set-*`` act on a set the request tracks, and silently do nothing
   otherwise, or when the table does not store the counter.
3. A rule's table is resolved once, at start-up: T, else the table of the proxy holding the
   rule (the configuration check made sure it exists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoproxy.rules.calls import RuleError
from geoproxy.rules.expr import compile_expr, parse_expr
from geoproxy.rules.fetch_counters import STICK_COUNTERS, table_named
from geoproxy.rules.outcome import Outcome, Step, StepContext
from geoproxy.rules.spec import Action, ScUpdate, TrackSc
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_int

if TYPE_CHECKING:
    from geoproxy.rules.actions import ActionLine


def track_slot(word: str) -> int | None:
    """N of ``track-scN``, else None."""
    digits = word[len("track-sc"):]
    return int(digits) if word.startswith("track-sc") and digits.isdigit() else None


def parse_track(line: ActionLine) -> Action:
    slot = track_slot(line.name)
    if slot is None:
        raise RuleError(f"unknown action '{line.name}'")
    if slot >= STICK_COUNTERS:
        raise RuleError(f"{slot} track-sc number exceeding {STICK_COUNTERS - 1} "
                        f"(MAX_SESS_STKCTR-1) value")
    if not line.peek() or line.peek() in ("if", "unless"):
        raise RuleError("missing fetch method")
    key = parse_expr(line.next("a sample expression"), line.context)
    table = None
    if line.peek() == "table":
        line.index += 1
        if not line.peek() or line.peek() in ("if", "unless"):
            raise RuleError("missing table name")
        table = line.next("a table name")
    return TrackSc(slot, key, table)


def parse_update(line: ActionLine) -> Action:
    """``sc-inc-gpc0[(N)]``, ``sc-inc-gpc(I,N)``, ``sc-set-gpt0[(N)] VALUE``,
    ``sc-set-gpt(I,N) VALUE``."""
    keyword, _, rest = line.name.partition("(")
    array = keyword in ("sc-inc-gpc", "sc-set-gpt")
    numbers = rest[:-1].split(",") if rest.endswith(")") else []
    if array:
        if len(numbers) != 2 or not all(n.strip().isdigit() for n in numbers):
            raise RuleError(f"'{keyword}' expects '({keyword[-3:]} index,stick counter ID)'")
        index, slot = int(numbers[0]), int(numbers[1])
    else:
        if rest and (len(numbers) != 1 or not numbers[0].strip().isdigit()):
            raise RuleError("invalid stick table track ID")
        index, slot = int(keyword[-1]), int(numbers[0]) if numbers else 0
    if slot >= STICK_COUNTERS:
        raise RuleError(f"invalid stick table track ID. The max allowed ID is "
                        f"{STICK_COUNTERS - 1}")
    family = "sc-inc-gpc" if keyword.startswith("sc-inc-gpc") else "sc-set-gpt"
    if family == "sc-inc-gpc":
        return ScUpdate(family, slot, index, array)
    text = line.peek()
    if not text or text in ("if", "unless"):
        return ScUpdate(family, slot, index, array)
    line.index += 1
    if text.lstrip("-").isdigit():
        return ScUpdate(family, slot, index, array, value=int(text))
    return ScUpdate(family, slot, index, array, expr=parse_expr(text, line.context))


def track_step(action: TrackSc, context: StepContext) -> Step:
    table = table_named(context.env, action.table)
    if table is None:
        return lambda txn: None
    evaluate = compile_expr(action.key, context.env)
    slot, key_of, response = action.slot, table.key_of, context.response

    def track(txn: Txn) -> Outcome:
        stick = txn.stick
        if stick is None:
            stick = txn.stick = [None] * STICK_COUNTERS
        elif stick[slot] is not None:
            return None
        value = evaluate(txn)
        key = None if value is None else key_of(value)
        if key is None:
            return None
        entry = table.track(key)
        if entry is None:  # a full nopurge table: nothing tracked, as in HAProxy
            return None
        stick[slot] = (table, entry)
        if response:
            status = txn.status
            if 400 <= status < 500:
                table.count(entry, "http_err")
            elif 500 <= status < 600 and status not in (501, 505):
                table.count(entry, "http_fail")
        return None

    return track


def update_step(action: ScUpdate, context: StepContext) -> Step:
    slot, index, array = action.slot, action.index, action.array
    if action.keyword == "sc-inc-gpc":
        def increment(txn: Txn) -> Outcome:
            stick = txn.stick
            tracked = stick[slot] if stick is not None else None
            if tracked is not None and (not array or tracked[0].spec.gpc_array):
                tracked[0].inc_gpc(tracked[1], index)
            return None

        return increment
    evaluate = compile_expr(action.expr, context.env) if action.expr is not None else None
    constant = action.value

    def set_tag(txn: Txn) -> Outcome:
        stick = txn.stick
        tracked = stick[slot] if stick is not None else None
        if tracked is None or (array and not tracked[0].spec.gpt_array):
            return None
        value = constant if evaluate is None else to_int(evaluate(txn))
        if value is not None:
            tracked[0].set_gpt(tracked[1], index, value)
        return None

    return set_tag
