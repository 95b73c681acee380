"""HTTP compression (``compression algo|type|offload``), with HAProxy 2.6's rules
(``flt_http_comp.c``), checked against haproxy 2.6.

Rules, request side (``choose_algorithm``):
1. The backend's algorithms if it names any, else the frontend's. A ``User-Agent`` starting
   with ``Mozilla/4`` gets nothing unless it is MSIE 6 SP2 or later MSIE (HAProxy's exception).
2. Each Accept-Encoding element (every header line, every comma-separated element) with a
   q-value above the best so far picks the algorithm it names; ``*`` names the LAST one
   configured (HAProxy keeps its list in reverse order); ``q=0`` never picks. Names compare
   without case.
3. Nothing picked: ``identity`` when configured (nothing changes), else no compression.
4. ``offload`` (backend's or frontend's): Accept-Encoding is removed from a request that got an
   algorithm, so the server does not compress first.

Response side (``compress_response``), only when the request picked a real algorithm:
5. Both request and response are HTTP/1.1, the method is not HEAD, the status is 200, 201,
   202 or 203, the body has a known length that is not zero (Content-Length above 0, or
   chunked; a body ending at the close is left alone), no Content-Encoding, no Cache-Control
   ``no-transform``, at most one well-formed ETag, Content-Type not ``multipart/*``, and the
   Content-Type starting (without case) with one of the ``type`` values when any is listed (the
   backend's list if it has one, else the frontend's; no Content-Type then compresses
   nothing).
6. The headers then change as HAProxy changes them: Content-Length removed (the body is sent
   chunked), a strong ETag becomes weak (``W/"..."``), ``Vary: Accept-Encoding`` and
   ``Content-Encoding: <algorithm>`` are appended.
7. The body streams: each piece from the server is compressed and flushed (``Z_SYNC_FLUSH``)
   before the next is read, so nothing is buffered whole and a slow server's pieces reach the
   client as they come; the stream ends with the compressor's trailer. zlib's level 1, as
   HAProxy's default ``tune.comp.maxlevel``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from geoproxy.config.model import Compression, CompressionAlgorithm

Environ = dict[str, Any]
Headers = list[tuple[str, str]]

_COMPRESSIBLE_STATUSES = frozenset({200, 201, 202, 203})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
_ETAG = re.compile(r'(?:W/)?"[^"]*"')
_LEVEL = 1  # HAProxy's tune.comp.maxlevel default
# zlib's wbits: gzip framing, zlib framing ("deflate"), raw deflate ("raw-deflate")
_WBITS = {
    CompressionAlgorithm.GZIP: 16 + zlib.MAX_WBITS,
    CompressionAlgorithm.DEFLATE: zlib.MAX_WBITS,
    CompressionAlgorithm.RAW_DEFLATE: -zlib.MAX_WBITS,
}


@dataclass(frozen=True, slots=True)
class CompressionPolicy:
    """The compression settings in force for one frontend/backend pair (rules 1, 4, 5)."""

    algorithms: tuple[CompressionAlgorithm, ...]
    types: tuple[str, ...]
    offload: bool

    @classmethod
    def of(cls, frontend: Compression | None, backend: Compression | None
           ) -> CompressionPolicy | None:
        algorithms = (backend.algorithms if backend else ()) or (
            frontend.algorithms if frontend else ())
        if not algorithms:
            return None
        types = (backend.types if backend else ()) or (frontend.types if frontend else ())
        offload = bool((backend and backend.offload) or (frontend and frontend.offload))
        return cls(algorithms, tuple(t.lower() for t in types), offload)


def _old_mozilla(agent: str) -> bool:
    """HAProxy's test for user agents that announce Mozilla/4 but are not MSIE 6 SP2+."""
    if not agent.startswith("Mozilla/4"):
        return False
    return (len(agent) < 31 or agent[25:30] != "MSIE " or agent[30] < "6"
            or (agent[30] == "6" and (len(agent) < 54 or agent[51:54] != "SV1")))


def _qvalue(parameters: str) -> int:
    """The q-value of an Accept-Encoding element in thousandths (1000 without one)."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip(" \t").partition("=")
        if name.strip(" \t").lower() != "q":
            continue
        value = value.strip(" \t")
        try:
            return max(0, min(1000, round(float(value) * 1000)))
        except ValueError:
            return 0
    return 1000


def choose_algorithm(environ: Environ, policy: CompressionPolicy
                     ) -> CompressionAlgorithm | None:
    """Rules 1-3: the algorithm this request accepts, or None."""
    if _old_mozilla(environ.get("HTTP_USER_AGENT", "")):
        return None
    chosen: CompressionAlgorithm | None = None
    best = 0
    for element in environ.get("HTTP_ACCEPT_ENCODING", "").split(","):
        element = element.strip(" \t")
        if not element:
            continue
        token = _TOKEN.match(element)
        name = token.group(0).lower() if token else ""
        quality = _qvalue(element[len(name):]) if ";" in element else 1000
        if quality <= best:
            continue
        for algorithm in reversed(policy.algorithms):
            if element.startswith("*") or name == algorithm.token:
                chosen, best = algorithm, quality
                break
    if chosen is None and CompressionAlgorithm.IDENTITY in policy.algorithms:
        return CompressionAlgorithm.IDENTITY
    return chosen


def _values(headers: Headers, name: str) -> list[str]:
    return [value for field, value in headers if field.lower() == name]


def compress_response(
    policy: CompressionPolicy, algorithm: CompressionAlgorithm, status: int,
    headers: Headers, facts: tuple[bool, bool, bool],
) -> Headers | None:
    """Rules 5 and 6: the response's new headers when it is to be compressed, else None.
    ``facts``: (the request is HTTP/1.1 and not HEAD, the response is HTTP/1.1, its body has a
    known length)."""
    request_ok, response_ok, known_length = facts
    if algorithm is CompressionAlgorithm.IDENTITY or not (request_ok and response_ok):
        return None
    if status not in _COMPRESSIBLE_STATUSES or not known_length:
        return None
    lengths = _values(headers, "content-length")
    if lengths and lengths[0] == "0":
        return None
    if _values(headers, "content-encoding"):
        return None
    for value in _values(headers, "cache-control"):
        if any(d.strip(" \t").lower() == "no-transform" for d in value.split(",")):
            return None
    etags = _values(headers, "etag")
    if len(etags) > 1 or (etags and not _ETAG.fullmatch(etags[0])):
        return None
    content_types = _values(headers, "content-type")
    if content_types:
        content_type = content_types[0].lower()
        if content_type.startswith("multipart"):
            return None
        if policy.types and not content_type.startswith(policy.types):
            return None
    elif policy.types:
        return None
    changed: Headers = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            continue
        if lowered == "etag" and value.startswith('"'):
            value = "W/" + value
        changed.append((name, value))
    changed.append(("vary", "Accept-Encoding"))
    changed.append(("content-encoding", algorithm.token))
    return changed


class CompressedBody:
    """A response body compressed as it streams (rule 7); ``close()`` closes the body it
    wraps (which ends the request: lease, statistics, log)."""

    __slots__ = ("_body", "_compressor")

    def __init__(self, body: Iterable[bytes], algorithm: CompressionAlgorithm) -> None:
        self._body = body
        self._compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS[algorithm])

    def __iter__(self) -> Iterator[bytes]:
        compressor = self._compressor
        for chunk in self._body:
            if chunk:
                data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
                if data:
                    yield data
        yield compressor.flush(zlib.Z_FINISH)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
