"""Conditions over a WSGI environ, for the callers that hold only the environ (persistence's
``force-persist``/``ignore-persist`` and stick rules, the stats page's ``stats admin``): the
rules engine's conditions (``geoproxy.rules.conditions``) on the request's ``Txn``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geoproxy.config.model import Condition
from geoproxy.rules.conditions import compile_condition as compile_txn_condition
from geoproxy.rules.fetches import request_path
from geoproxy.rules.txn import txn_of

Environ = dict[str, Any]
Predicate = Callable[[Environ], bool]

__all__ = ["Predicate", "compile_condition", "request_path"]


def compile_condition(condition: Condition) -> Predicate:
    """``if``/``unless`` COND as one predicate over the environ (its ``Txn`` is made on
    first use and shared with the request's rules)."""
    holds = compile_txn_condition(condition)
    return lambda environ: holds(txn_of(environ))
