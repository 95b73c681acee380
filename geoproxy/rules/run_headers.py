"""The header actions (``set-header``, ``add-header``, ``del-header``, ``replace-header``,
``replace-value``) on the request's environ or the response's header list; ``run.py`` rules 2
and 3 (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable

from geoproxy.httptext import header_values
from geoproxy.rules.logformat import Render, compile_logformat
from geoproxy.rules.outcome import FORBIDDEN, Outcome, Step, StepContext, failed_rewrite
from geoproxy.rules.spec import HeaderAction
from geoproxy.rules.txn import Txn, environ_key


def header_step(action: HeaderAction, context: StepContext) -> Step:
    render = compile_logformat(action.value, context.env) if action.value else None
    if context.response:
        return _response_header_step(action, render)
    return _request_header_step(action, render)


def _checked(render: Render, constant: str | None) -> Callable[[Txn], str | None]:
    if constant is not None:
        return lambda txn: constant

    def value(txn: Txn) -> str | None:
        text = render(txn)
        return None if "\n" in text or "\r" in text or "\0" in text else text

    return value


def _request_header_step(action: HeaderAction, render: Render | None) -> Step:
    key = environ_key(action.name)
    kind = action.keyword
    if kind in ("set-header", "add-header"):
        assert render is not None and action.value is not None
        value_of = _checked(render, action.value.constant)
        joiner = "; " if key == "HTTP_COOKIE" else ", "
        if kind == "set-header":
            def set_header(txn: Txn) -> Outcome:
                value = value_of(txn)
                if value is None:
                    return failed_rewrite()
                environ = txn.environ
                environ.pop(key, None)
                environ[key] = value
                return None

            return set_header

        def add_header(txn: Txn) -> Outcome:
            value = value_of(txn)
            if value is None:
                return failed_rewrite()
            environ = txn.environ
            old = environ.pop(key, None)
            environ[key] = value if old is None else old + joiner + value
            return None

        return add_header
    if kind == "del-header":
        if action.method == "str":
            return lambda txn: txn.environ.pop(key, None) and None
        matches = _name_matcher(action)

        def delete(txn: Txn) -> Outcome:
            environ = txn.environ
            for name in [k for k in environ if _is_header_key(k) and matches(_name(k))]:
                del environ[name]
            return None

        return delete
    assert render is not None and action.regex is not None
    replace = _replacer(re.compile(action.regex), render, kind == "replace-value")

    def replace_step(txn: Txn) -> Outcome:
        environ = txn.environ
        old = environ.get(key)
        if old is None:
            return None
        new = replace(old, txn)
        if new is None:
            return failed_rewrite()
        environ[key] = new
        return None

    return replace_step


def _is_header_key(key: str) -> bool:
    return key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")


def _name(key: str) -> str:
    return (key[5:] if key.startswith("HTTP_") else key).lower().replace("_", "-")


def _name_matcher(action: HeaderAction) -> Callable[[str], bool]:
    name = action.name.lower()
    method = action.method
    if method == "beg":
        return lambda header: header.startswith(name)
    if method == "end":
        return lambda header: header.endswith(name)
    if method == "sub":
        return lambda header: name in header
    if method == "reg":
        regex = re.compile(action.name, re.IGNORECASE)
        return lambda header: regex.search(header) is not None
    return lambda header: header == name


def _replacer(regex: re.Pattern[str], render: Render,
              per_value: bool) -> Callable[[str, Txn], str | None]:
    """Rule 2's ``replace-header``/``replace-value`` on one header value."""

    def one(value: str, replacement: str) -> str:
        match = regex.search(value)
        if match is None:
            return value
        return expand_groups(replacement, match)

    def replace(value: str, txn: Txn) -> str | None:
        replacement = render(txn)
        if per_value:
            # HAProxy rewrites a value in place, the blanks before it included: a replaced
            # value after a comma loses its space ("a1, a2" -> "b1,b2")
            parts = []
            for index, part in enumerate(header_values(value)):
                replaced = one(part, replacement)
                if index:
                    parts.append("," if replaced != part else ", ")
                parts.append(replaced)
            new = "".join(parts)
        else:
            new = one(value, replacement)
        return None if FORBIDDEN.search(new) else new

    return replace


def expand_groups(replacement: str, match: re.Match[str]) -> str:
    """HAProxy's ``exp_replace``: ``\\N`` is group N of the match (empty when it did not
    take part), other characters are copied."""
    parts = re.split(r"\\(\d)", replacement)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            number = int(part)
            out.append((match.group(number) or "") if number <= (match.re.groups or 0) else "")
        else:
            out.append(part)
    return "".join(out)


def _response_header_step(action: HeaderAction, render: Render | None) -> Step:
    name = action.name.lower()
    kind = action.keyword
    if kind in ("set-header", "add-header"):
        assert render is not None and action.value is not None
        value_of = _checked(render, action.value.constant)
        written = action.name
        replace_all = kind == "set-header"

        def write(txn: Txn) -> Outcome:
            value = value_of(txn)
            if value is None:
                return failed_rewrite()
            headers = txn.headers
            if replace_all:
                headers[:] = [h for h in headers if h[0].lower() != name]
            headers.append((written, value))
            return None

        return write
    if kind == "del-header":
        matches = _name_matcher(action)

        def delete(txn: Txn) -> Outcome:
            txn.headers[:] = [h for h in txn.headers if not matches(h[0].lower())]
            return None

        return delete
    assert render is not None and action.regex is not None
    replace = _replacer(re.compile(action.regex), render, kind == "replace-value")

    def replace_step(txn: Txn) -> Outcome:
        headers = txn.headers
        for index, (header, value) in enumerate(headers):
            if header.lower() == name:
                new = replace(value, txn)
                if new is None:
                    return failed_rewrite()
                headers[index] = (header, new)
        return None

    return replace_step
