"""The sample fetches stick tables key on, pure, with HAProxy's choice of occurrence.

Rules (HAProxy 2.6 configuration manual, section 7.3, and ``http_fetch.c``):
1. Header values are split on commas outside quotes and trimmed, as HAProxy's ``hdr`` family
   and its cookie fetches see them; header names are case-insensitive.
2. ``req.cook(NAME)``: the value of the LAST cookie NAME of all the request's Cookie headers;
   without NAME, the value of the first cookie. Names are case-sensitive, values are returned
   as sent (an empty value is a value). ``$Attributes`` and cookies without ``=`` never match.
3. ``res.cook(NAME)``: the same over the response's Set-Cookie headers, where only the first
   ``NAME=VALUE`` pair of each (comma-separated) value counts.
4. ``hdr(NAME[,OCC])``: the LAST value of header NAME by default; OCC > 0 counts from the
   first value (1 is the first), OCC < 0 from the last (-1 is the last).
5. ``url_param(NAME[,DELIM])``: the FIRST value of parameter NAME in the query string, which
   starts after the first ``?`` or DELIM and whose parameters end at ``&``, ``;`` or DELIM; no
   URL decoding. Without NAME, the first parameter's value.
6. ``src``: the client's address as the connection gives it.
Every fetch returns None when it finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from geoproxy.config.model import Sample, SampleFetch
from geoproxy.httptext import header_values
from geoproxy.persistence.cookie_header import SPHT, value_end

Headers = Sequence[tuple[str, str]]


def _values(headers: Headers, name: str) -> Iterator[str]:
    """Every comma-separated value of header ``name`` (rule 1)."""
    lower = name.lower()
    for header, value in headers:
        if header.lower() == lower:
            yield from header_values(value)


def _cookies(text: str, name: str, is_list: bool) -> Iterator[str]:
    """The values of the cookies called ``name`` (any name if empty) in one header value, as
    HAProxy's ``http_extract_cookie_value`` finds them; a Set-Cookie value (``is_list``
    false) yields at most its first pair."""
    end = len(text)
    att_beg = 0
    stops = "=;," if is_list else "=;"
    while att_beg + len(name) + 1 < end:
        while att_beg < end and text[att_beg] in SPHT:
            att_beg += 1
        att_end = equal = att_beg
        while equal < end and text[equal] not in stops:
            equal += 1
            if text[equal - 1] not in SPHT:
                att_end = equal
        if equal < end and text[equal] == "=":
            val_beg = equal + 1
            while val_beg < end and text[val_beg] in SPHT:
                val_beg += 1
            nxt = val_end = value_end(text, val_beg, end)
            while val_end > val_beg and text[val_end - 1] in SPHT:
                val_end -= 1
        else:
            val_beg = val_end = nxt = equal
        if text.startswith("$", att_beg) or equal == nxt:
            att_beg = nxt + 1
            continue
        if not name or text[att_beg:att_end] == name:
            yield text[val_beg:val_end]
        elif not is_list:
            return
        att_beg = nxt + 1


def _cook(values: Iterator[str], name: str | None, is_list: bool) -> str | None:
    found = None
    for value in values:
        if len(value) < len(name or "") + 1:
            continue
        for cookie in _cookies(value, name or "", is_list):
            if not name:
                return cookie
            found = cookie
    return found


def cookie_values(values: Iterable[str], name: str | None, is_list: bool) -> list[str]:
    """Every value of the cookies called ``name`` (any cookie when None) in header values
    ``values`` (Cookie values with ``is_list``, else Set-Cookie values), in order: what an ACL
    on ``req.cook``/``res.cook`` iterates."""
    found: list[str] = []
    for value in values:
        if len(value) < len(name or "") + 1:
            continue
        found.extend(_cookies(value, name or "", is_list))
    return found


def req_cook(request_headers: Headers, name: str | None) -> str | None:
    """``req.cook(NAME)`` (rule 2)."""
    return _cook(_values(request_headers, "cookie"), name, is_list=True)


def res_cook(response_headers: Headers, name: str | None) -> str | None:
    """``res.cook(NAME)`` (rule 3)."""
    return _cook(_values(response_headers, "set-cookie"), name, is_list=False)


def hdr(headers: Headers, name: str, occurrence: int = -1) -> str | None:
    """``hdr(NAME,OCC)`` (rule 4); ``occurrence`` 0 means the last, as -1."""
    values = list(_values(headers, name))
    index = occurrence - 1 if occurrence > 0 else occurrence or -1
    if -len(values) <= index < len(values):
        return values[index]
    return None


def url_param(target: str, name: str | None, delim: str = "?") -> str | None:
    """``url_param(NAME,DELIM)`` (rule 5) of the request target ``target``."""
    starts = [i for i in (target.find("?"), target.find(delim)) if i >= 0]
    if not starts:
        return None
    query = target[min(starts) + 1 :]
    ends = "&;" + delim
    pos = 0
    while pos < len(query):
        end = pos
        while end < len(query) and query[end] not in ends:
            end += 1
        key, equal, value = query[pos:end].partition("=")
        if equal and (not name or key == name):
            return value
        pos = end + 1
    return None


def src(client_address: str) -> str | None:
    """``src`` (rule 6)."""
    return client_address or None


@dataclass(frozen=True, slots=True)
class SampleSource:
    """What a fetch may read: the client address, the request target and headers, and the
    response headers once there is a response."""

    client_address: str
    target: str
    request_headers: Headers
    response_headers: Headers = ()


def _split(argument: str | None) -> tuple[str | None, str | None]:
    """``NAME[,EXTRA]`` of a fetch argument."""
    if argument is None:
        return None, None
    name, comma, extra = argument.partition(",")
    return name.strip() or None, extra.strip() if comma else None


def fetch(sample: Sample, source: SampleSource) -> str | None:
    """Evaluate ``sample`` against ``source``; None when it finds nothing."""
    name, extra = _split(sample.argument)
    if sample.fetch is SampleFetch.REQ_COOK:
        return req_cook(source.request_headers, name)
    if sample.fetch is SampleFetch.RES_COOK:
        return res_cook(source.response_headers, name)
    if sample.fetch is SampleFetch.SRC:
        return src(source.client_address)
    if sample.fetch is SampleFetch.URL_PARAM:
        return url_param(source.target, name, extra or "?")
    headers = source.request_headers if sample.fetch is SampleFetch.HDR else source.response_headers
    if name is None:
        return None
    # the configuration parser rejects a non-numeric occurrence; never fail a request on it
    occurrence = int(extra) if extra and extra.lstrip("-").isdigit() else -1
    return hdr(headers, name, occurrence)
