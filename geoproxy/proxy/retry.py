"""Where a connection retry goes: the same server, or another one (``option redispatch``), as
HAProxy 2.6 decides it (``stream_choose_redispatch``; checked against haproxy 2.6.12).

Rules, for a request whose connection attempt just failed and that has a retry left:
1. Without ``option redispatch`` every retry goes to the same server.
2. With it, the retry goes to another server when the failed server is no longer running, or
   when the number of failed attempts is a multiple of the redispatch interval (``option
   redispatch N``; the default -1 means the last retry), or at once for a balanced request
   (neither a persistence cookie nor a stick table chose the server) when more than one primary
   server is usable and the algorithm is not a hash: that request does not care which server
   answers, so waiting for the failed one helps nobody.
3. A retry on the same server waits the turn-around, min(``timeout connect``, 1 s); a retry on
   another server does not (``proxy/runtime.py`` holds the turn-around).
"""

from __future__ import annotations

from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend, BalanceAlgorithm

# HAProxy's BE_LB_KIND_HI: the algorithms that hash something of the request
_HASHING = frozenset(
    {
        BalanceAlgorithm.SOURCE,
        BalanceAlgorithm.URI,
        BalanceAlgorithm.URL_PARAM,
        BalanceAlgorithm.HDR,
        BalanceAlgorithm.HASH,
    }
)


def redispatches(
    backend: Backend, view: BackendView, failed_server: str, failures: int, direct: bool
) -> bool:
    """True when the retry after ``failures`` failed attempts (1 after the first) leaves
    ``failed_server`` for another server (rules 1 and 2). ``direct``: persistence chose the
    server."""
    if not backend.redispatch:
        return False
    server = view.server(failed_server)
    if server is not None and not server.is_running:
        return True
    interval = backend.redispatch_interval
    every = interval if interval > 0 else backend.retries + 1 + interval
    if every > 0 and failures % every == 0:
        return True
    if direct or backend.balance.algorithm in _HASHING:
        return False
    usable = sum(1 for s in view.servers if not s.backup and s.is_usable)
    return usable > 1
