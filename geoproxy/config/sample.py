"""Sample fetches for stick rules: ``req.cook(NAME)``, ``src``, ``res.hdr(NAME)`` ...

Rules:
1. Accepted fetches and their aliases: ``req.cook``/``cookie``, ``res.cook``/``set-cookie``
   (the 1.x name, which HAProxy 2.x no longer accepts: a warning), ``src``, ``hdr``/``req.hdr``,
   ``res.hdr``, ``url_param``/``urlp``. Every fetch but ``src`` needs its name argument.
2. ``hdr`` means the request header in request rules and the response header in
   ``store-response`` rules, as HAProxy documents.
3. Request fetches are refused in ``store-response`` rules and response fetches in the others,
   with HAProxy's message. Converters (``,lower``) are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geoproxy.config.model import Sample, SampleFetch

F = SampleFetch
_TOKEN = re.compile(r"([a-z._-]+)(?:\(([^()]*)\))?", re.ASCII)
_FETCHES: dict[str, SampleFetch] = {
    "req.cook": F.REQ_COOK, "cookie": F.REQ_COOK,
    "res.cook": F.RES_COOK, "set-cookie": F.RES_COOK,
    "src": F.SRC,
    "hdr": F.HDR, "req.hdr": F.HDR, "res.hdr": F.RES_HDR,
    "url_param": F.URL_PARAM, "urlp": F.URL_PARAM,
}
_REQUEST = {F.REQ_COOK, F.SRC, F.HDR, F.URL_PARAM}
_RESPONSE = {F.RES_COOK, F.RES_HDR, F.SRC}
_SOURCES = {F.REQ_COOK: "HTTP request headers", F.HDR: "HTTP request headers",
            F.URL_PARAM: "HTTP request headers", F.RES_COOK: "HTTP response headers",
            F.RES_HDR: "HTTP response headers", F.SRC: "client address"}

SUPPORTED = tuple(_FETCHES)


class SampleError(Exception):
    """A fetch geoproxy cannot evaluate, or one used where its data does not exist."""


@dataclass(frozen=True, slots=True)
class ParsedSample:
    sample: Sample
    warning: str | None = None


def parse_sample(token: str, on_response: bool) -> ParsedSample:
    """Parse one fetch for a stick rule; ``on_response`` for ``store-response``."""
    match = _TOKEN.fullmatch(token)
    if match is None and "," in token:
        raise SampleError(f"converters are not supported by geoproxy (in '{token}')")
    if match is None or match.group(1) not in _FETCHES:
        raise SampleError(f"unknown fetch method '{token}' "
                          f"(geoproxy supports {', '.join(SUPPORTED)})")
    name, argument = match.group(1), match.group(2)
    fetch = _FETCHES[name]
    if fetch is F.HDR and on_response:
        fetch = F.RES_HDR
    _check_argument(name, fetch, argument)
    allowed = _RESPONSE if on_response else _REQUEST
    if fetch not in allowed:
        where = "for 'store-response'" if on_response else "during request"
        raise SampleError(f"fetch method '{name}' extracts information from "
                          f"'{_SOURCES[fetch]}', none of which is available {where}.")
    value = argument.strip() if argument else None
    if fetch in (F.HDR, F.RES_HDR) and value:
        value = value.lower()
    warning = None
    if name == "set-cookie":
        warning = ("fetch method 'set-cookie' is HAProxy 1.x's name for 'res.cook', which "
                   "HAProxy 2.x refuses; geoproxy reads it as 'res.cook'")
    return ParsedSample(Sample(fetch, value), warning)


def _check_argument(name: str, fetch: SampleFetch, argument: str | None) -> None:
    if fetch is F.SRC:
        if argument is not None:
            raise SampleError(f"fetch method '{name}' takes no argument")
        return
    if not argument or not argument.strip():
        raise SampleError(f"fetch method '{name}' expects a name: '{name}(NAME)'")
    if "," in argument:
        raise SampleError(f"fetch method '{name}' takes one argument (got '{argument}')")
