"""Where a connection retry goes (``retries``, ``option redispatch [interval]``), as HAProxy 2.6
decides it (``stream_choose_redispatch``; every rule below was checked against haproxy 2.6 on
loopback with a refused server).

Rules:
1. Without ``option redispatch`` every retry goes to the same server.
2. With it, a request that persistence does not bind to its server, in a backend with more than
   one usable server and an algorithm that is not a hash (roundrobin, static-rr, leastconn,
   first, random), is redispatched on every retry, the first included: the manual's "we don't
   care about this particular server".
3. Otherwise the interval decides: N > 0 redispatches every Nth retry; N < 0 the Nth retry
   before the last (the default, -1: the last retry).
4. A retry waits the turnaround, min(1 s, ``timeout connect``), before it connects, unless it
   goes to another server.
"""

from __future__ import annotations

from geoproxy.config.model import Backend, BalanceAlgorithm

_HASHES = frozenset(
    {
        BalanceAlgorithm.SOURCE,
        BalanceAlgorithm.URI,
        BalanceAlgorithm.URL_PARAM,
        BalanceAlgorithm.HDR,
    }
)


def redispatches(backend: Backend, failures: int, usable: int, persistent: bool = False) -> bool:
    """Whether the retry that follows the ``failures``-th failed connection attempt of one
    request (1 for the first) goes to another server.

    ``usable`` is how many servers of the backend could take the request; ``persistent`` is
    true when persistence (a cookie, a stick table) chose the server.
    """
    if not backend.redispatch:
        return False
    if not persistent and usable > 1 and backend.balance.algorithm not in _HASHES:
        return True
    interval = backend.redispatch_interval
    if interval > 0:
        return failures % interval == 0
    period = backend.retries + 1 + interval
    return period > 0 and failures % period == 0
