"""One proxy's rules, compiled once per process, and the loop that runs a rule list (pure).

Rules (HAProxy 2.6, ``http_ana.c``):
1. Rules run in configuration order; a rule whose condition holds runs its step. A step's
   ``STOP`` (``allow``) ends this list only: the other proxy's list still runs. A
   ``LocalReply`` ends every list: the client gets that answer.
2. Where the lists run: the frontend's ``http-request`` rules, then (once the backend is
   chosen) the backend's, unless the backend is the frontend's own ``listen`` section; on
   the server's response the backend's ``http-response`` rules, then the frontend's; on every
   response, geoproxy's own answers included, the backend's ``http-after-response`` rules,
   then the frontend's. The proxy app sequences them (``geoproxy.proxy.rules``).
3. ``capture request header`` slots are filled from the request as it arrived, before any
   rule; ``capture response header`` slots from the response as the server sent it.
4. A proxy without rules compiles to None: requests through it pay nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from geoproxy.config.model import HttpRule, HttpRules
from geoproxy.rules.actions import ACTIONS, action_name
from geoproxy.rules.conditions import Predicate, compile_condition
from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.run import STOP, LocalReply, Outcome, Step, StepContext
from geoproxy.rules.txn import Txn, environ_key

CompiledRule = tuple[Predicate | None, Step]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One proxy's compiled rule lists and capture slots (rule 3)."""

    request: tuple[CompiledRule, ...]
    response: tuple[CompiledRule, ...]
    after_response: tuple[CompiledRule, ...]
    request_captures: tuple[tuple[str | None, int], ...]  # (environ key or None, length)
    response_captures: tuple[tuple[str | None, int], ...]  # (header name or None, length)

    def capture_request(self, txn: Txn) -> None:
        if not self.request_captures:
            return
        environ = txn.environ
        txn.captures = [
            None if key is None or (value := environ.get(key)) is None else value[:length]
            for key, length in self.request_captures
        ]

    def capture_response(self, txn: Txn) -> None:
        if not self.response_captures:
            return
        found: list[str | None] = []
        for name, length in self.response_captures:
            value = None
            for header, text in txn.headers:
                if name is not None and header.lower() == name:
                    value = text[:length]
            found.append(value)
        txn.res_captures = found


def compile_rules(rules: HttpRules, proxy: str, env: CompileEnv) -> RuleSet | None:
    """The rule set of one proxy, or None when it has no rule and no capture (rule 4)."""
    if rules.is_empty:
        return None
    return RuleSet(
        request=_compile_list(rules.request, proxy, env, response=False),
        response=_compile_list(rules.response, proxy, env, response=True),
        after_response=_compile_list(rules.after_response, proxy, env, response=True),
        request_captures=tuple(
            (environ_key(slot.header) if slot.header else None, slot.length)
            for slot in rules.request_captures),
        response_captures=tuple((slot.header, slot.length) for slot in rules.response_captures),
    )


def _compile_list(rules: Sequence[HttpRule], proxy: str, env: CompileEnv,
                  response: bool) -> tuple[CompiledRule, ...]:
    context = StepContext(env, proxy, response)
    compiled = []
    for rule in rules:
        name = action_name(rule.keyword.rpartition(" ")[2] if " " in rule.keyword
                           else rule.keyword)
        step = ACTIONS[name].step(rule.action, context)
        holds = compile_condition(rule.condition, env, response) if rule.condition else None
        compiled.append((holds, step))
    return tuple(compiled)


def run_rules(rules: tuple[CompiledRule, ...], txn: Txn) -> LocalReply | None:
    """Run one list (rule 1): the reply a rule answers with, else None."""
    for holds, step in rules:
        if holds is None or holds(txn):
            outcome: Outcome = step(txn)
            if outcome is None:
                continue
            if outcome is STOP:
                return None
            assert isinstance(outcome, LocalReply)
            return outcome
    return None
