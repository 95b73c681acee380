"""A process learns of every write to the fleet's routing state within milliseconds: Redis tells
it (client-side caching's broadcast mode), and the process reloads its snapshot then.

Rules:
1. One connection per Redis primary (one for a single server or a Sentinel's master, one per
   primary of a Cluster) turns tracking on in broadcast mode (``CLIENT TRACKING on REDIRECT
   <itself> BCAST PREFIX gp:{B}:srv: ...``) and subscribes to ``__redis__:invalidate``. Redis
   then sends it the name of every key under those prefixes that anyone writes: a worker, the
   stats page, ``geoproxy set``, the Runtime API, the health checker or ``redis-cli HSET``.
   It speaks RESP2 (invalidations reach a RESP2 client as messages on that channel), whatever
   protocol the rest of the process uses.
2. What is tracked is written only when it changes (``keys.py`` rule 4): a message means a
   change, and costs Redis one message per worker; nothing is sent while nothing changes, so
   there is no steady load, whatever the number of workers.
3. A message asks the owner for a refresh (``on_change``); the owner coalesces the messages
   that arrive while it refreshes into one more refresh. The request path is not involved: no
   round trip is added to it.
4. The heartbeat's reload stays the safety net: while the connection is down (Redis away, a
   failover), the process reloads every heartbeat as before, and each new connection asks for
   a refresh, since writes made while it was down told nobody.
5. Every wait is bounded: a silent connection is pinged every ``PING_PERIOD`` and dropped
   when the pong does not come; a failed connection is tried again after ``RETRY``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis

from geoproxy.state.connect import REDIS_ERRORS, Client, is_cluster
from geoproxy.state.heartbeat import HEARTBEAT_PERIOD

CHANNEL = "__redis__:invalidate"
PING_PERIOD = 5.0  # seconds of silence before a ping (rule 5)
RETRY = 1.0  # seconds between two connection attempts (rule 5)
# Redis away, or refusing CLIENT TRACKING (before Redis 6, or an ACL user without it)
_WATCH_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, redis.exceptions.ResponseError)
SLICE = 0.25  # seconds a wait lasts before it looks at the stop flag


class Watcher:
    """Calls ``on_change`` whenever a key under one of ``prefixes`` is written (rule 1)."""

    def __init__(
        self,
        client: Client,
        prefixes: Sequence[str],
        on_change: Callable[[], None],
        log: logging.Logger,
    ) -> None:
        self._client = client
        self._prefixes = tuple(prefixes)
        self._on_change = on_change
        self._log = log
        self.watching = threading.Event()  # set while every primary's connection is tracking
        self._warned = False  # said once that changes wait for the heartbeat (until watching)
        self._ready = 0  # primaries whose connection is tracking, in this round of connections

    def loop(self, stop: threading.Event) -> None:
        """Watch until ``stop`` (one thread per primary; rule 4 between connections)."""
        if not self._prefixes:
            return
        while not stop.is_set():
            try:
                pools = self._pools()
            except REDIS_ERRORS:
                stop.wait(RETRY)
                continue
            done = threading.Event()  # one primary's connection ended: list the primaries anew
            threads = [
                threading.Thread(
                    target=self._watch_node, args=(pool, stop, done, len(pools)), daemon=True,
                    name="geoproxy-watcher",
                )
                for pool in pools
            ]
            self._ready = 0
            for thread in threads:
                thread.start()
            while not stop.is_set() and not done.wait(SLICE):
                pass
            self.watching.clear()
            for thread in threads:
                thread.join(timeout=2 * SLICE)
            stop.wait(RETRY)

    def _pools(self) -> list[Any]:
        """The connection pool of every primary (rule 1)."""
        client: Any = self._client
        if is_cluster(client):
            return [node.redis_connection.connection_pool for node in client.get_primaries()]
        return [client.connection_pool]

    def _watch_node(self, pool: Any, stop: threading.Event, done: threading.Event,
                    nodes: int) -> None:
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        try:
            self._subscribe(connection)
            self._ready += 1
            if self._ready == nodes:
                self.watching.set()
                self._warned = False
            self._on_change()  # rule 4: what was written before this connection told nobody
            self._listen(connection, stop, done)
        except _WATCH_ERRORS as error:
            log = self._log.debug if self._warned else self._log.warning
            self._warned = True
            log("changes of routing state reach this process at its heartbeat only (every "
                "%s s) until Redis tells it of them again: %s", HEARTBEAT_PERIOD, error)
        except Exception:
            self._log.exception("routing state watcher failed; reloading every heartbeat")
        finally:
            done.set()
            connection.disconnect()

    def _subscribe(self, connection: Any) -> None:
        connection.connect()
        connection.send_command("CLIENT", "ID")
        own_id = connection.read_response()
        prefixes = [word for prefix in self._prefixes for word in ("PREFIX", prefix)]
        connection.send_command("CLIENT", "TRACKING", "on", "REDIRECT", own_id, "BCAST",
                                *prefixes)
        connection.read_response()
        connection.send_command("SUBSCRIBE", CHANNEL)
        connection.read_response()

    def _listen(self, connection: Any, stop: threading.Event, done: threading.Event) -> None:
        silent = 0.0  # seconds without a message
        pinged = False
        while not stop.is_set() and not done.is_set():
            if not connection.can_read(timeout=SLICE):
                silent += SLICE
                if silent >= PING_PERIOD:
                    if pinged:
                        raise TimeoutError(f"no pong within {PING_PERIOD} s")
                    connection.send_command("PING")
                    pinged, silent = True, 0.0
                continue
            silent = 0.0
            message = connection.read_response()
            kind = message[0] if isinstance(message, list) and message else None
            if kind == "message":
                self._on_change()  # rule 3 (a None payload: the database was flushed)
            elif kind == "pong":
                pinged = False
