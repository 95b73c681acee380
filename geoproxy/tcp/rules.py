"""``tcp-request`` rules compiled once, evaluated per connection (HAProxy's
``tcp_exec_l4_rules`` and ``tcp_inspect_request``).

Rules:
1. Rules run in order; the first whose condition holds decides (``accept``, ``reject``,
   ``silent-drop``). A rule without a condition always holds. A stick-counter rule
   (``track-sc*``, ``sc-inc-gpc*``, ``sc-set-gpt*``) whose condition holds acts once per
   connection and list (``done``) and the rules after it still run; a connection's tracked
   counters live on its ``TcpFacts`` (``stick``) until the session ends.
2. A condition that cannot be decided yet (``None``: a fetch wants more bytes, or ``WAIT_END``
   before the delay is over) stops the evaluation: the caller reads more and asks again; the
   rules after it are not looked at yet, as in HAProxy.
3. When no rule decides, the connection is accepted.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geoproxy.config.model_tcp import TcpAction, TcpRequestRule
from geoproxy.rules.fetch_types import CompileEnv
from geoproxy.tcp.conditions import TcpPredicate, compile_condition
from geoproxy.tcp.counters import counter_action
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
    verdict: Verdict | None  # None: a stick-counter rule, which decides nothing
    holds: TcpPredicate | None  # None: no condition
    act: Callable[[TcpFacts], None] | None = None  # a stick-counter rule's action


def compile_rules(rules: Sequence[TcpRequestRule], env: CompileEnv | None = None,
                  proxy: str = "", *, connection: bool = False) -> tuple[CompiledRule, ...]:
    """``rules`` compiled; ``env`` gives conditions and stick-counter actions the tables
    (``proxy``: the rules' own proxy, whose table is the default one)."""
    env = dataclasses.replace(env or CompileEnv(), proxy=proxy)
    compiled = []
    for rule in rules:
        holds = compile_condition(rule.condition, env) if rule.condition else None
        if rule.counter is None:
            compiled.append(CompiledRule(_VERDICTS[rule.action], holds))
        else:
            compiled.append(CompiledRule(None, holds, counter_action(
                rule.counter, env, connection=connection)))
    return tuple(compiled)


def evaluate(rules: Sequence[CompiledRule], facts: TcpFacts,
             done: set[int] | None = None) -> Verdict:
    """The decision of ``rules`` on ``facts`` (rules 1 to 3); ``done`` remembers the
    stick-counter rules that acted (the rules are evaluated again as bytes arrive)."""
    for index, rule in enumerate(rules):
        result = True if rule.holds is None else rule.holds(facts)
        if result is None:
            if facts.final:
                continue  # cannot happen with final facts; read as "does not hold"
            return Verdict.WAIT
        if not result:
            continue
        if rule.verdict is not None:
            return rule.verdict
        if rule.act is not None and (done is None or index not in done):
            rule.act(facts)
            if done is not None:
                done.add(index)
    return Verdict.ACCEPT
