"""``balance hash EXPR`` (HAProxy 2.6): the key is one sample fetch's value, hashed with the
``hash-type`` function, on a map-based or consistent table like the other hashing algorithms.

Rules:
1. The fetches geoproxy evaluates: ``src`` (the address's bytes), ``dst_port``/``src``-side
   integers as 8 big-endian bytes (HAProxy's integer-to-binary cast), ``req.ssl_sni``, ``path``,
   ``url``, ``hdr(NAME)``/``req.hdr(NAME)`` (the first value). Converters are not supported.
2. A fetch without a value falls back to round robin, as HAProxy does (``hashing.py`` rule 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from socket import AF_INET, AF_INET6, inet_pton

from geoproxy.balance.hashfuncs import HashFn, full_hash
from geoproxy.balance.hashing import first_value
from geoproxy.balance.policy import RequestKeys

_HEADER = re.compile(r"(?:req\.)?hdr\(\s*([^()\s,]+)\s*\)")
FETCHES = ("src", "dst_port", "req.ssl_sni", "req_ssl_sni", "path", "url", "hdr(NAME)",
           "req.hdr(NAME)")
Extract = Callable[[RequestKeys], bytes | None]


class ExpressionError(Exception):
    """A ``balance hash`` expression geoproxy cannot evaluate."""


def _address(keys: RequestKeys) -> bytes | None:
    for family in (AF_INET, AF_INET6):
        try:
            return inet_pton(family, keys.source)
        except (OSError, ValueError):
            continue
    return None


def extractor(expression: str) -> Extract:
    """The function that fetches ``expression``'s value from a request (rule 1). Raises
    ``ExpressionError``."""
    if "," in expression:
        raise ExpressionError(f"converters are not supported by geoproxy (in '{expression}')")
    if expression == "src":
        return _address
    if expression == "dst_port":
        return lambda keys: keys.destination_port.to_bytes(8, "big") \
            if keys.destination_port else None
    if expression in ("req.ssl_sni", "req_ssl_sni"):
        return lambda keys: keys.server_name.encode("ascii", "replace") \
            if keys.server_name else None
    if expression == "path":
        return lambda keys: keys.uri.split("?", 1)[0].encode("latin-1", "replace") or None
    if expression == "url":
        return lambda keys: keys.uri.encode("latin-1", "replace") or None
    header = _HEADER.fullmatch(expression)
    if header is not None:
        name = header.group(1).lower()

        def value(keys: RequestKeys) -> bytes | None:
            raw = keys.header(name)
            found = first_value(raw) if raw is not None else ""
            return found.encode("latin-1", "replace") if found else None

        return value
    raise ExpressionError(f"fetch '{expression}' is not supported by geoproxy in 'balance hash' "
                          f"(it supports {', '.join(FETCHES)})")


class ExpressionHash:
    """The key hasher of ``balance hash EXPR`` (a ``hashing.KeyHash``)."""

    __slots__ = ("_extract", "_function", "_avalanche")

    def __init__(self, expression: str, function: HashFn, avalanche: bool) -> None:
        self._extract = extractor(expression)
        self._function = function
        self._avalanche = avalanche

    def __call__(self, request: RequestKeys) -> int | None:
        key = self._extract(request)
        if key is None:
            return None
        h = self._function(key)
        return full_hash(h) if self._avalanche else h
