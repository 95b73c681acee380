"""The raw-socket acquire path (geoproxy/state/fastpath.py) against real Redis servers: TCP with
a database number, a unix socket, a password, and a server that lost its scripts. (TLS and ACL
users: tests/integration/test_redis_auth_tls.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from geoproxy.runtime.embedded_redis import EmbeddedRedis
from geoproxy.state.fastpath import FastCaller, fast_caller
from tests.support.acquire_script import Call, Listed, call, keys_of

INFLIGHT = keys_of("f").inflight
ONE = Call(requests=[Listed("first", [("s1", 1, 0)])])


def _taken(client: redis.Redis, fast: FastCaller | None) -> str | None:
    """The server acquire.lua took, sent on ``fast``."""
    server: str | None = call(client, "f", ONE, fast)[0][0]
    return server


def test_urls_that_need_redis_py_get_no_fast_path() -> None:
    assert fast_caller("rediss://127.0.0.1:6380/0?ssl_ciphers=HIGH", 0.5) is None
    assert fast_caller("redis+sentinel://127.0.0.1:26379/mymaster", 0.5) is None
    assert fast_caller("redis+cluster://127.0.0.1:7000", 0.5) is None
    assert fast_caller("redis://127.0.0.1:1/3", 0.5) is not None
    assert fast_caller("rediss://127.0.0.1:6380/0?ssl_cert_reqs=none", 0.5) is not None


def test_acquire_on_the_fast_path_selects_the_database_of_the_url(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/3"
    fast = fast_caller(url, 0.5)
    assert fast is not None
    client = redis.Redis.from_url(url, decode_responses=True)
    assert _taken(client, fast) == "s1"
    assert client.hget(INFLIGHT, "s1") == "1"
    assert redis.Redis.from_url(redis_url).hget(INFLIGHT, "s1") is None, "db 0 untouched"
    fast.close()
    client.close()


def test_a_server_that_lost_its_scripts_gets_them_again(redis_url: str) -> None:
    fast = fast_caller(redis_url, 0.5)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.script_flush()
    assert _taken(client, fast) == "s1"
    fast.close() if fast else None
    client.close()


def test_unix_socket_and_password(tmp_path: Path) -> None:
    with EmbeddedRedis(runtime_dir=tmp_path) as server:
        plain = redis.Redis.from_url(server.url)
        plain.config_set("requirepass", "s3cret")
        plain.close()
        socket_path = server.url.split("://", 1)[1].split("?", 1)[0]
        url = f"unix://:s3cret@{socket_path}?db=0"
        fast = fast_caller(url, 0.5)
        client = redis.Redis.from_url(url, decode_responses=True)
        assert _taken(client, fast) == "s1"
        wrong = fast_caller(f"unix://:nope@{socket_path}?db=0", 0.5)
        assert wrong is not None
        with pytest.raises(redis.exceptions.AuthenticationError):
            wrong.evalsha("0" * 40, [], [])
        fast.close() if fast else None
        client.close()


def test_a_dead_server_is_a_connection_error() -> None:
    fast = fast_caller("redis://127.0.0.1:1/0", 0.5)
    assert fast is not None
    with pytest.raises(redis.exceptions.ConnectionError):
        fast.evalsha("0" * 40, [], [])


def test_pooled_connections_that_redis_closed_are_replaced_without_an_error(
    redis_url: str,
) -> None:
    fast = fast_caller(redis_url, 0.5)
    assert fast is not None
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert _taken(client, fast) == "s1"
    client.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    assert _taken(client, fast) == "s1"
    assert client.hget(INFLIGHT, "s1") == "2", "sent once on the fresh connection"
    fast.close()
    client.close()
