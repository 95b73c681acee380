"""Whether a response may be stored by a shared cache, judged as HAProxy 2.6 judges it for
``cookie ... nocache`` (checked against haproxy 2.6 itself, see tests/unit/cases/cookies/).

Rules:
1. Only responses to GET, HEAD, OPTIONS and TRACE can be cacheable. The request's headers do not
   matter (haproxy 2.6 adds ``Cache-Control: private`` even with ``Authorization`` or a request
   ``Cache-Control: no-store``).
2. Only the statuses RFC 7231 calls cacheable by default: 200, 203, 204, 206, 300, 301, 404,
   405, 410, 414, 501.
3. A first ``Pragma`` header equal to ``no-cache`` makes the response not cacheable.
4. The ``Cache-Control`` directives are read in order, across every such header: ``public``
   makes it cacheable again (even for a POST); ``private``, ``no-cache``, ``no-store``,
   ``max-age=0``, ``s-maxage=0`` (exactly, any case) make it not cacheable; ``max-age...`` and
   ``s-maxage...`` give it freshness.
5. Without freshness (rule 4 or an ``Expires`` header) and without a validator (``ETag`` or
   ``Last-Modified``), it is not cacheable.
"""

from __future__ import annotations

from collections.abc import Iterable

from geoproxy.httptext import header_values

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CACHEABLE_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501})
_FORBIDDING = frozenset({"private", "no-cache", "no-store", "max-age=0", "s-maxage=0"})


def is_cacheable(method: str, status: int, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a shared cache could store this response (the rules above)."""
    cacheable = method in SAFE_METHODS and status in CACHEABLE_STATUSES
    pragma_seen = fresh = validator = expires = False
    for name, value in headers:
        lower = name.lower()
        if lower == "pragma" and not pragma_seen:
            pragma_seen = True
            if value.strip(" \t").lower() == "no-cache":
                return False
        elif lower == "cache-control":
            for directive in header_values(value):
                directive = directive.lower()
                if directive == "public":
                    cacheable = True
                elif directive in _FORBIDDING:
                    cacheable = False
                elif directive.startswith('no-cache="set-cookie'):
                    continue
                elif directive.startswith(("s-maxage", "max-age")):
                    fresh = True
        elif lower == "expires":
            expires = True
        elif lower in ("etag", "last-modified"):
            validator = True
    return cacheable and (fresh or expires or validator)
