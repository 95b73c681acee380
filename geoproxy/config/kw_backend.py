"""Backend keywords: balance, hash-type, cookie, dynamic-cookie-key, stick-table, stick.

Each parser takes the section draft and one ``Line``; see ``context.py`` for the contract.
Messages are HAProxy 2.6's where HAProxy has one (checked with ``haproxy -c``).
"""

from __future__ import annotations

import re

from geoproxy.config.acl import AclError
from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft, StickRuleDraft
from geoproxy.config.kw_proxy import condition
from geoproxy.config.model import (
    Balance,
    BalanceAlgorithm,
    HashFunction,
    HashSettings,
    HashType,
    StickRuleKind,
    StickTable,
    StickTableType,
)
from geoproxy.config.sample import SampleError, parse_sample
from geoproxy.config.units import UnitError, parse_size, parse_time

B = BalanceAlgorithm
_SIMPLE = {"roundrobin": B.ROUNDROBIN, "static-rr": B.STATIC_RR, "leastconn": B.LEASTCONN,
           "first": B.FIRST, "source": B.SOURCE}
_BALANCE_NAMES = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "url_param",
                  "hdr(name)", "random", "hash")
_RANDOM = re.compile(r"random(?:\((.*)\))?")
_HDR = re.compile(r"hdr\((.*)\)")
# what geoproxy.balance.exprhash evaluates
_HASH_FETCHES = ("src", "dst_port", "req.ssl_sni", "req_ssl_sni", "path", "url")
_HASH_HEADER = re.compile(r"(?:req\.)?hdr\(\s*([^()\s,]+)\s*\)")
_STICK_KINDS = {"on": StickRuleKind.ON, "match": StickRuleKind.MATCH,
                "store": StickRuleKind.STORE_REQUEST,
                "store-request": StickRuleKind.STORE_REQUEST,
                "store-response": StickRuleKind.STORE_RESPONSE}


def parse_balance(proxy: ProxyDraft, line: Line) -> None:
    algorithm = line.arg(0)
    if algorithm in _SIMPLE:
        _no_more(line, 1, algorithm)
        proxy.settings.balance = Balance(_SIMPLE[algorithm])
    elif algorithm == "uri":
        proxy.settings.balance = _balance_uri(line)
    elif algorithm == "url_param":
        if not line.arg(1):
            line.fail("balance url_param requires an URL parameter name.")
        if line.arg(2) == "check_post":
            line.fail("balance url_param : 'check_post' (reading the request body) is not "
                      "supported by geoproxy.")
        _no_more(line, 2, algorithm)
        proxy.settings.balance = Balance(B.URL_PARAM, param=line.arg(1))
    elif algorithm.startswith("hdr"):
        proxy.settings.balance = _balance_hdr(line)
    elif algorithm.startswith("random"):
        proxy.settings.balance = _balance_random(line)
    elif algorithm == "hash":
        proxy.settings.balance = _balance_hash(line)
    else:
        line.fail(f"balance only supports {quoted_list(_BALANCE_NAMES)} options"
                  f"{_got(algorithm)}.")


def _got(word: str) -> str:
    return f" (got '{word}')" if word else ""


def _no_more(line: Line, count: int, algorithm: str) -> None:
    if len(line.args) > count:
        line.fail(f"balance {algorithm} : unexpected argument '{line.args[count]}'.")


def _balance_uri(line: Line) -> Balance:
    length = depth = 0
    whole = path_only = False
    index = 1
    while index < len(line.args):
        word = line.args[index]
        if word in ("len", "depth"):
            value = line.arg(index + 1)
            if not value.isdigit() or int(value) == 0:
                line.fail(f"balance uri : '{word}' expects a positive integer (got '{value}').")
            length, depth = (int(value), depth) if word == "len" else (length, int(value))
            index += 2
            continue
        if word not in ("whole", "path-only"):
            line.fail("balance uri only accepts parameters 'len', 'depth', 'path-only', and "
                      f"'whole' (got '{word}').")
        whole, path_only = whole or word == "whole", path_only or word == "path-only"
        index += 1
    return Balance(B.URI, uri_len=length, uri_depth=depth, uri_whole=whole,
                   uri_path_only=path_only)


def _balance_hdr(line: Line) -> Balance:
    match = _HDR.fullmatch(line.arg(0))
    name = match.group(1).strip() if match else ""
    if not name:
        line.fail("balance hdr requires an http header field name.")
    domain_only = line.arg(1) == "use_domain_only"
    if line.arg(1) and not domain_only:
        line.fail(f"balance hdr : only 'use_domain_only' may follow the header name "
                  f"(got '{line.arg(1)}').")
    _no_more(line, 2 if domain_only else 1, "hdr")
    return Balance(B.HDR, param=name.lower(), use_domain_only=domain_only)


def _balance_random(line: Line) -> Balance:
    match = _RANDOM.fullmatch(line.arg(0))
    if match is None:
        line.fail(f"balance only supports {quoted_list(_BALANCE_NAMES)} options"
                  f"{_got(line.arg(0))}.")
    draws_text = match.group(1)
    draws = 2
    if draws_text is not None:
        digits = re.match(r"\d*", draws_text)
        end = digits.end() if digits else 0
        if end < len(draws_text):
            line.fail(f"balance random : unexpected character '{draws_text[end]}' after "
                      "argument.")
        draws = int(draws_text) if draws_text else 0
        if draws < 1:
            line.fail("balance random : number of draws must be at least 1.")
    _no_more(line, 1, "random")
    return Balance(B.RANDOM, draws=draws)


def _balance_hash(line: Line) -> Balance:
    expression = line.arg(1)
    if not expression:
        line.fail("balance hash : expects a sample expression.")
    _no_more(line, 2, "hash")
    if "," in expression:
        line.fail(f"balance hash : converters are not supported by geoproxy (in '{expression}').")
    if expression not in _HASH_FETCHES and not _HASH_HEADER.fullmatch(expression):
        line.fail(f"balance hash : fetch '{expression}' is not supported by geoproxy (it "
                  f"supports {', '.join(_HASH_FETCHES)}, hdr(NAME), req.hdr(NAME)).")
    return Balance(B.HASH, expression=expression)


def parse_hash_type(proxy: ProxyDraft, line: Line) -> None:
    method = {"consistent": HashType.CONSISTENT, "map-based": HashType.MAP_BASED}.get(
        line.arg(0))
    if method is None:
        line.fail("'hash-type' only supports 'consistent' and 'map-based'.")
    if not line.arg(1):
        # HAProxy applies avalanche to consistent hashing when no function is named
        proxy.settings.hash = HashSettings(method, HashFunction.SDBM,
                                           method is HashType.CONSISTENT)
        return
    functions = {f.value: f for f in HashFunction}
    if line.arg(1) not in functions:
        line.fail("'hash-type' only supports 'sdbm', 'djb2', 'crc32', or 'wt6' hash functions.")
    if line.arg(2) and line.arg(2) != "avalanche":
        line.fail("'hash-type' only supports 'avalanche' as a modifier for hash functions.")
    line.at_most(3)
    proxy.settings.hash = HashSettings(method, functions[line.arg(1)], bool(line.arg(2)))


def parse_dynamic_cookie_key(proxy: ProxyDraft, line: Line) -> None:
    if not line.args:
        line.fail("'dynamic-cookie-key' expects <secret_key> as argument.")
    line.at_most(1)
    proxy.settings.dynamic_cookie_key = line.arg(0)


def parse_stick_table(proxy: ProxyDraft, line: Line) -> None:
    existing = proxy.rules.stick_table
    if existing is not None:
        line.fail(f"stick-table name '{proxy.name}' conflicts with table declared in "
                  f"{proxy.label} at {existing.location}.")
    proxy.rules.stick_table = _stick_table(line)


def _stick_table(line: Line) -> StickTable:
    types = {t.value: t for t in StickTableType}
    if line.arg(0) != "type" or line.arg(1) not in types:
        line.fail(f"stick-table: unknown type '{line.arg(1)}' (expected "
                  f"{quoted_list(types, 'or')}).")
    table_type, length, size, expire, nopurge = types[line.arg(1)], 32, 0, None, False
    index = 2
    while index < len(line.args):
        word, value = line.args[index], line.arg(index + 1)
        if word == "len" and table_type in (StickTableType.STRING, StickTableType.BINARY):
            if not value.isdigit() or int(value) == 0:
                line.fail(f"stick-table: 'len' expects a positive integer (got '{value}').")
            length = int(value)
        elif word == "size":
            size = _table_number(line, value, "size")
        elif word == "expire":
            try:
                expire = parse_time(value) or None
            except UnitError as exc:
                line.fail(f"stick-table: {_unit_message(exc, 'expire')}")
        elif word in ("peers", "store", "srvkey", "write-to"):
            _ignored_table_option(line, word)
        elif word == "nopurge":
            nopurge, index = True, index - 1
        else:
            line.fail(f"stick-table: unknown argument '{word}'.")
        index += 2
    if size == 0:
        line.fail("stick-table: missing size.")
    return StickTable(table_type, size, line.location, length, expire, nopurge)


def _table_number(line: Line, value: str, name: str) -> int:
    try:
        return parse_size(value)
    except UnitError as exc:
        line.fail(f"stick-table: {_unit_message(exc, name)}")


def _unit_message(exc: UnitError, name: str) -> str:
    if exc.character is None and not exc.overflow:
        return f"'{name}' expects a value."
    if exc.overflow:
        return exc.describe(name)
    return f"unexpected character '{exc.character}' in argument of '{name}'."


def _ignored_table_option(line: Line, word: str) -> None:
    if word == "peers":
        line.warn("stick-table: 'peers' is ignored by geoproxy: every process already shares "
                  "the table through Redis.")
    elif word == "store":
        line.warn("stick-table: 'store' is ignored by geoproxy: its tables keep the server "
                  "of each entry, nothing else.")
    else:
        line.fail(f"stick-table: '{word}' is not supported by geoproxy.")


def parse_stick(proxy: ProxyDraft, line: Line) -> None:
    kind = _STICK_KINDS.get(line.arg(0))
    if kind is None:
        line.fail("'stick' expects 'on', 'match', 'store-request' or 'store-response'.")
    if not line.arg(1):
        line.fail("'stick' expects a fetch method.")
    try:
        parsed = parse_sample(line.arg(1), kind is StickRuleKind.STORE_RESPONSE)
    except SampleError as exc:
        line.fail(f"'stick': {exc}")
    index, table = 2, None
    if line.arg(index) == "table":
        table = line.arg(index + 1)
        if not table:
            line.fail("'stick': 'table' expects a table name.")
        index += 2
    cond = None
    if line.arg(index) in ("if", "unless"):
        try:
            cond = condition(proxy, line, index)
        except AclError as exc:
            line.fail(f"'stick': error detected while parsing sticking condition : {exc}.")
    elif line.arg(index):
        line.fail(f"'stick': unknown keyword '{line.arg(index)}'.")
    if parsed.warning:
        line.warn(f"'stick': {parsed.warning}")
    proxy.rules.stick_rules.append(
        StickRuleDraft(kind, parsed.sample, line.location, table, cond))
