"""A real Redis-protocol server on a free loopback port, through EmbeddedRedis."""

from __future__ import annotations

import atexit
from dataclasses import dataclass

import redis

from geoproxy.runtime.embedded_redis import EmbeddedRedis


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running test server: its redis-py URL (database 0) and its pid."""

    url: str
    pid: int
    port: int
    cli_hint: str


def start_redis_server() -> tuple[RedisServer, EmbeddedRedis]:
    """Start a server on a free 127.0.0.1 port. The caller stops it with ``EmbeddedRedis.stop``
    (an atexit hook stops it too if pytest dies first)."""
    embedded = EmbeddedRedis().start()
    atexit.register(embedded.stop)
    port = embedded.port
    assert port is not None
    return RedisServer(embedded.url, embedded.pid, port, embedded.cli_hint), embedded


def flush_all(url: str) -> None:
    """Empty every database of the server at ``url``."""
    with redis.Redis.from_url(url) as client:
        client.flushall()
