"""The fetches that read HTTP fields: request and response headers, cookies, URL parameters
(``fetches.py`` rule 3), as closures built once from checked arguments (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from geoproxy.persistence.samples import cookie_values
from geoproxy.persistence.samples import url_param as find_url_param
from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_types import Args, CompileEnv, Fetch, FetchAll
from geoproxy.rules.txn import Txn, environ_key, request_header_items, split_values


def last_value(value: str | None) -> str | None:
    values = split_values(value)
    return values[-1] if values else None


# -- headers (rule 3) ---------------------------------------------------------------------


def request_values(txn: Txn, key: str) -> list[str]:
    return split_values(txn.environ.get(key))


def response_values(txn: Txn, name: str) -> list[str]:
    values: list[str] = []
    for header, value in txn.headers:
        if header.lower() == name:
            values.extend(split_values(value))
    return values


def response_lines(txn: Txn, name: str) -> list[str]:
    return [value for header, value in txn.headers if header.lower() == name]


def pick(values: list[str], occurrence: int) -> str | None:
    index = occurrence - 1 if occurrence > 0 else occurrence or -1
    return values[index] if -len(values) <= index < len(values) else None


def header_name(args: Args) -> str:
    return str(args[0]).lower() if args else ""


def occurrence_of(args: Args) -> int:
    return arg_int(args[1]) if len(args) > 1 else -1


def every_request_value(txn: Txn) -> list[str]:
    values: list[str] = []
    for _, value in request_header_items(txn.environ):
        values.extend(split_values(value))
    return values


def req_hdr(args: Args, env: CompileEnv) -> Fetch:
    if not header_name(args):
        return lambda txn: last(every_request_value(txn))
    key, occurrence = environ_key(header_name(args)), occurrence_of(args)
    if occurrence == -1:
        return lambda txn: last_value(txn.environ.get(key))
    return lambda txn: pick(request_values(txn, key), occurrence)


def req_hdr_all(args: Args, env: CompileEnv) -> FetchAll:
    if not header_name(args):
        return every_request_value
    key, occurrence = environ_key(header_name(args)), occurrence_of(args)
    if len(args) > 1:
        return lambda txn: one(pick(request_values(txn, key), occurrence))
    return lambda txn: request_values(txn, key)


def res_hdr(args: Args, env: CompileEnv) -> Fetch:
    name, occurrence = header_name(args), occurrence_of(args)
    return lambda txn: pick(response_values(txn, name), occurrence)


def res_hdr_all(args: Args, env: CompileEnv) -> FetchAll:
    name, occurrence = header_name(args), occurrence_of(args)
    if len(args) > 1:
        return lambda txn: one(pick(response_values(txn, name), occurrence))
    return lambda txn: response_values(txn, name)


def hdr(args: Args, env: CompileEnv) -> Fetch:
    request, response = req_hdr(args, env), res_hdr(args, env)
    return lambda txn: response(txn) if txn.status else request(txn)


def hdr_all(args: Args, env: CompileEnv) -> FetchAll:
    request, response = req_hdr_all(args, env), res_hdr_all(args, env)
    return lambda txn: response(txn) if txn.status else request(txn)


def one(value: object) -> Iterable[object]:
    return () if value is None else (value,)


def req_fhdr(args: Args, env: CompileEnv) -> Fetch:
    key = environ_key(header_name(args))
    return lambda txn: txn.environ.get(key)


def res_fhdr(args: Args, env: CompileEnv) -> Fetch:
    name, occurrence = header_name(args), occurrence_of(args)
    return lambda txn: pick(response_lines(txn, name), occurrence)


def counted(values: Callable[[Txn], list[str]]) -> Fetch:
    return lambda txn: len(values(txn))


def req_hdr_cnt(args: Args, env: CompileEnv) -> Fetch:
    key = environ_key(header_name(args))
    return counted(lambda txn: request_values(txn, key))


def req_fhdr_cnt(args: Args, env: CompileEnv) -> Fetch:
    key = environ_key(header_name(args))
    return lambda txn: 1 if key in txn.environ else 0


def res_hdr_cnt(args: Args, env: CompileEnv) -> Fetch:
    name = header_name(args)
    return counted(lambda txn: response_values(txn, name))


def res_fhdr_cnt(args: Args, env: CompileEnv) -> Fetch:
    name = header_name(args)
    return counted(lambda txn: response_lines(txn, name))


def converted_by(convert: Callable[[object], object],
        make: Callable[[Args, CompileEnv], Fetch]) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        fetch = make(args, env)

        def converted(txn: Txn) -> object:
            value = fetch(txn)
            return None if value is None else convert(value)

        return converted

    return made


def hdr_names(args: Args, env: CompileEnv) -> Fetch:
    delimiter = str(args[0]) if args else ","
    return lambda txn: delimiter.join(name for name, _ in request_header_items(txn.environ))


# -- cookies and URL parameters -----------------------------------------------------------


def req_cook_all(args: Args, env: CompileEnv) -> FetchAll:
    name = str(args[0]) if args else None
    return lambda txn: cookie_values(request_values_raw(txn), name, True)


def request_values_raw(txn: Txn) -> list[str]:
    cookie = txn.environ.get("HTTP_COOKIE")
    return [cookie] if cookie else []


def req_cook(args: Args, env: CompileEnv) -> Fetch:
    every = req_cook_all(args, env)
    if not args:
        return lambda txn: next(iter(every(txn)), None)
    return lambda txn: last(every(txn))


def res_cook_all(args: Args, env: CompileEnv) -> FetchAll:
    name = str(args[0]) if args else None
    return lambda txn: cookie_values(response_lines(txn, "set-cookie"), name, False)


def res_cook(args: Args, env: CompileEnv) -> Fetch:
    every = res_cook_all(args, env)
    if not args:
        return lambda txn: next(iter(every(txn)), None)
    return lambda txn: last(every(txn))


def count_all(make: Callable[[Args, CompileEnv], FetchAll]
               ) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        every = make(args, env)
        return lambda txn: sum(1 for _ in every(txn))

    return made


def last(values: Iterable[object]) -> object:
    found = None
    for value in values:
        found = value
    return found


def url_param(args: Args, env: CompileEnv) -> Fetch:
    name = str(args[0]) if args and args[0] else None
    delim = str(args[1]) if len(args) > 1 and args[1] else "?"
    return lambda txn: find_url_param(txn.environ.get("RAW_URI") or "/", name, delim)


def url_param_all(args: Args, env: CompileEnv) -> FetchAll:
    name = str(args[0]) if args and args[0] else None
    delim = str(args[1]) if len(args) > 1 and args[1] else "?"

    def every(txn: Txn) -> list[str]:
        target: str = txn.environ.get("RAW_URI") or "/"
        starts = [i for i in (target.find("?"), target.find(delim)) if i >= 0]
        if not starts:
            return []
        found = []
        for part in split_any(target[min(starts) + 1 :], "&;" + delim):
            key, equal, value = part.partition("=")
            if equal and (name is None or key == name):
                found.append(value)
        return found

    return every


def split_any(text: str, delimiters: str) -> list[str]:
    parts, start = [], 0
    for index, char in enumerate(text):
        if char in delimiters:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts
