"""``tcp-request`` rules compiled once, evaluated per connection (HAProxy's
``tcp_exec_l4_rules`` and ``tcp_inspect_request``).

Rules:
1. Rules run in order; the first whose condition holds decides (``accept``, ``reject``,
   ``silent-drop``). A rule without a condition always holds.
2. A condition that cannot be decided yet (``None``: a fetch wants more bytes, or ``WAIT_END``
   before the delay is over) stops the evaluation: the caller reads more and asks again; the
   rules after it are not looked at yet, as in HAProxy.
3. When no rule decides, the connection is accepted.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from geoproxy.config.model_tcp import TcpAction, TcpRequestRule
from geoproxy.tcp.conditions import TcpPredicate, compile_condition
from geoproxy.tcp.facts import TcpFacts


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    SILENT_DROP = "silent-drop"
    WAIT = "wait"  # rule 2


_VERDICTS = {
    TcpAction.ACCEPT: Verdict.ACCEPT,
    TcpAction.REJECT: Verdict.REJECT,
    TcpAction.SILENT_DROP: Verdict.SILENT_DROP,
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    verdict: Verdict
    holds: TcpPredicate | None  # None: no condition


def compile_rules(rules: Sequence[TcpRequestRule]) -> tuple[CompiledRule, ...]:
    return tuple(
        CompiledRule(_VERDICTS[rule.action],
                     compile_condition(rule.condition) if rule.condition else None)
        for rule in rules
    )


def evaluate(rules: Sequence[CompiledRule], facts: TcpFacts) -> Verdict:
    """The decision of ``rules`` on ``facts`` (rules 1 to 3)."""
    for rule in rules:
        if rule.holds is None:
            return rule.verdict
        result = rule.holds(facts)
        if result is None:
            if facts.final:
                continue  # cannot happen with final facts; read as "does not hold"
            return Verdict.WAIT
        if result:
            return rule.verdict
    return Verdict.ACCEPT
