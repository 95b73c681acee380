"""The fleet's frontends in Redis, for tools that read Redis alone (``geoproxy top``).

Rules:
1. Frontends have no counters of their own: what one sends is counted in its backends'
   statistics (``fe:F:*`` fields), so a tool without the configuration would not see a
   frontend that sent nothing yet, nor a listener that serves only the stats page. Each
   gunicorn master therefore names its frontends in ``gp:frontends`` at start-up and at every
   reload, with their kind.
2. Kinds: ``proxy`` (sends requests to backends) and ``stats`` (a listener that serves only the
   stats page: HAProxy shows its BACKEND UP, the page being its server).
3. Names are never removed, as ``gp:backends``'s are not: another host may still run them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from geoproxy.state.connect import connect
from geoproxy.state.keys import FRONTENDS

PROXY = "proxy"
STATS = "stats"
_TIMEOUT = 0.5  # seconds, as every other Redis call of geoproxy


class FrontendDirectory:
    """``gp:frontends`` on one Redis (module rules). Raises redis-py's errors when Redis is
    away, and ``RedisUrlError`` for a URL it cannot use."""

    def __init__(self, url: str) -> None:
        self._client = connect(url, _TIMEOUT)

    def register(self, kinds: Mapping[str, str]) -> None:
        """Name these frontends (name -> ``PROXY`` or ``STATS``)."""
        if kinds:
            self._client.hset(FRONTENDS, mapping={name: kind for name, kind in kinds.items()})

    def read(self) -> dict[str, str]:
        """Every frontend any master named, with its kind."""
        return cast(dict[str, str], self._client.hgetall(FRONTENDS))

    def close(self) -> None:
        self._client.close()
