"""Sample expressions ``FETCH[(ARGS)][,CONV[(ARGS)]]...``: parsed and checked at load time,
compiled once into closures over a ``Txn`` (pure).

Rules:
1. The fetch and every converter must be in their tables (``fetches.py``, ``converters.py``);
   a name in a refused family gets its reason, an unknown one the list of what geoproxy has.
2. Where a rule runs decides what it may fetch: a response rule cannot read the request's
   headers, a request rule cannot read the response (HAProxy's "may not be reliably used
   here" error). ACLs are checked where a condition uses them, with a warning instead.
3. A converter runs only on a sample: a fetch or converter that yields None ends the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from geoproxy.rules.calls import ParseContext, RuleError, parse_args, split_call, split_top_level
from geoproxy.rules.converters import CONVERTERS
from geoproxy.rules.converters import refused_reason as refused_converter
from geoproxy.rules.fetches import DERIVED, FETCHES, CompileEnv, refused_reason
from geoproxy.rules.spec import Call, SampleExpr
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_str

Evaluate = Callable[[Txn], object]
EvaluateAll = Callable[[Txn], Iterable[object]]

_NEEDS_TEXT: Final = {"req": "HTTP request headers", "res": "HTTP response"}


def parse_expr(text: str, context: ParseContext, check_side: bool = True) -> SampleExpr:
    """Parse and check one sample expression (rules 1 and 2). Raises ``RuleError``."""
    if not text:
        raise RuleError("missing fetch method")
    parts = split_top_level(text)
    name, raw = split_call(parts[0])
    definition = FETCHES.get(name)
    if definition is None:
        raise RuleError(_unknown_fetch(name))
    if check_side:
        check_fetch_side(name, context.response)
    args = parse_args("fetch method", name, definition.signature, raw, context)
    converters = tuple(_converter(part, context) for part in parts[1:])
    return SampleExpr(Call(name, args), converters, text)


def check_fetch_side(name: str, response: bool) -> None:
    """Rule 2 for fetch ``name``, in a response rule when ``response``."""
    if fetch_usable(name, response):
        return
    needs = FETCHES[name].needs
    raise RuleError(f"sample fetch <{name}> may not be reliably used here because it needs "
                    f"'{_NEEDS_TEXT[needs]}' which is not available here")


def fetch_usable(name: str, response: bool) -> bool:
    needs = FETCHES[name].needs
    return needs == "any" or (needs == "res") == response


def _unknown_fetch(name: str) -> str:
    reason = refused_reason(name)
    if reason is not None:
        return f"fetch method '{name}' is not supported: {reason}"
    if name in DERIVED:
        return f"'{name}' is an ACL keyword; in a sample expression use " \
               f"'{DERIVED[name][0]}' with a converter"
    return f"unknown fetch method '{name}'"


def _converter(part: str, context: ParseContext) -> Call:
    name, raw = split_call(part)
    definition = CONVERTERS.get(name)
    if definition is None:
        reason = refused_converter(name)
        if reason is not None:
            raise RuleError(f"converter '{name}' is not supported: {reason}")
        raise RuleError(f"unknown converter '{name}'")
    args = parse_args("converter", name, definition.signature, raw, context)
    if definition.check is not None:
        try:
            definition.check(args)
        except RuleError as exc:
            raise RuleError(f"invalid args in converter '{name}' : {exc}") from None
    return Call(name, args)


def output_type(expr: SampleExpr) -> str:
    """The type of the expression's result (picks an ACL's default matching method)."""
    kind = FETCHES[expr.fetch.name].output
    if expr.fetch.name == "http_auth_group" and not expr.converters:
        return "group"
    for converter in expr.converters:
        produced = CONVERTERS[converter.name].output
        kind = kind if produced == "same" else produced
    return kind


def compile_expr(expr: SampleExpr, env: CompileEnv) -> Evaluate:
    """The expression as one closure: its sample, or None (rule 3)."""
    fetch = FETCHES[expr.fetch.name].make(expr.fetch.args, env)
    converters = tuple(CONVERTERS[c.name].make(c.args) for c in expr.converters)
    if not converters:
        return fetch
    if len(converters) == 1:
        (only,) = converters

        def one(txn: Txn) -> object:
            value = fetch(txn)
            return None if value is None else only(value, txn)

        return one

    def chain(txn: Txn) -> object:
        value = fetch(txn)
        for convert in converters:
            if value is None:
                return None
            value = convert(value, txn)
        return value

    return chain


def compile_text(expr: SampleExpr, env: CompileEnv) -> Callable[[Txn], str | None]:
    """The expression's sample as text (what a log-format string shows): the fetch's own
    text form when it has one and no converter follows (``src`` is the client's address as
    the connection gives it, not parsed and printed again)."""
    definition = FETCHES[expr.fetch.name]
    if not expr.converters and definition.make_text is not None:
        return definition.make_text(expr.fetch.args, env)
    evaluate = compile_expr(expr, env)
    if output_type(expr) == "str":
        def as_str(txn: Txn) -> str | None:
            value = evaluate(txn)
            return value if value is None or type(value) is str else to_str(value)

        return as_str
    return lambda txn: to_str(evaluate(txn))


def compile_expr_all(expr: SampleExpr, env: CompileEnv) -> EvaluateAll | None:
    """Every sample of a multi-valued fetch, converted (what an ACL tries one by one); None
    when the fetch has a single value (use ``compile_expr``)."""
    definition = FETCHES[expr.fetch.name]
    if definition.make_all is None:
        return None
    every = definition.make_all(expr.fetch.args, env)
    converters = tuple(CONVERTERS[c.name].make(c.args) for c in expr.converters)
    if not converters:
        return every

    def converted(txn: Txn) -> Iterable[object]:
        for value in every(txn):
            for convert in converters:
                if value is None:
                    break
                value = convert(value, txn)
            if value is not None:
                yield value

    return converted
