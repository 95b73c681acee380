"""``tcp-request content`` rules of an HTTP proxy, run on each request as HAProxy runs them in
HTTP mode (its ``tcp_inspect_request`` at the start of every stream): the frontend's first,
then, once ``use_backend`` chose, the backend's (unless it is the frontend's own ``listen``).

Rules:
1. In order, the first ``accept`` or ``reject`` whose condition holds decides (none: the
   request goes on); ``silent-drop`` rejects, the worker closing the connection.
2. A stick-counter action (``track-sc*``, ``sc-inc-gpc*``, ``sc-set-gpt*``) whose condition
   holds acts and the rules after it still run. A content ``track-sc*`` tracks the request
   as ``http-request track-sc*`` does (``geoproxy.rules.run_counters``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from geoproxy.config.model_tcp import TcpAction, TcpRequestRules
from geoproxy.rules.conditions import compile_condition
from geoproxy.rules.fetch_types import CompileEnv
from geoproxy.rules.outcome import Step, StepContext
from geoproxy.rules.run_counters import track_step, update_step
from geoproxy.rules.spec import TrackSc
from geoproxy.rules.txn import Txn

# (condition or None, True to reject / False to accept / None to go on, the action's step)
ContentRule = tuple[Callable[[Txn], bool] | None, bool | None, Step | None]


def compile_content_rules(rules: TcpRequestRules | None, env: CompileEnv,
                          proxy: str) -> tuple[ContentRule, ...]:
    if rules is None:
        return ()
    env = dataclasses.replace(env, proxy=proxy)
    context = StepContext(env, proxy, response=False)
    compiled: list[ContentRule] = []
    for rule in rules.content:
        holds = compile_condition(rule.condition, env, response=False) if rule.condition \
            else None
        if rule.counter is None:
            compiled.append((holds, rule.action is not TcpAction.ACCEPT, None))
        elif isinstance(rule.counter, TrackSc):
            compiled.append((holds, None, track_step(rule.counter, context)))
        else:
            compiled.append((holds, None, update_step(rule.counter, context)))
    return tuple(compiled)


def rejects(rules: tuple[ContentRule, ...], txn: Txn) -> bool:
    """Whether ``rules`` reject the request (rules 1 and 2)."""
    for holds, decision, step in rules:
        if holds is None or holds(txn):
            if step is not None:
                step(txn)
            elif decision is not None:
                return decision
    return False
