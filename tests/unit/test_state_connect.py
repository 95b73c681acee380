"""Reading Redis URLs into clients (geoproxy/state/connect.py): which topology, which nodes,
which credentials and TLS options, and that making a client does no I/O (nothing listens on the
addresses below)."""

from __future__ import annotations

import ssl

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from geoproxy.state.connect import LazyCluster, RedisUrlError, connect, is_cluster, redact
from geoproxy.state.fastpath import fast_caller, tls_context


def test_a_single_server_url_gives_redis_py_its_own_reading() -> None:
    client = connect("redis://geo:p%40ss@127.0.0.1:6390/3", 0.25)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6390, 3)
    assert (kwargs["username"], kwargs["password"]) == ("geo", "p@ss")
    assert kwargs["socket_timeout"] == 0.25 and kwargs["decode_responses"]
    assert not is_cluster(client)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    url = "redis+sentinel://geo:pw@127.0.0.1:26390,127.0.0.1,[::1]:26391/mymaster/2"
    url += "?sentinel_password=spw"
    client = connect(url, 0.25)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["username"]) == (2, "geo")
    sentinels = pool.sentinel_manager.sentinels
    addresses = [s.connection_pool.connection_kwargs for s in sentinels]
    assert [(a["host"], a["port"]) for a in addresses] == [
        ("127.0.0.1", 26390),
        ("127.0.0.1", 26379),
        ("::1", 26391),
    ]
    assert all(a["password"] == "spw" and a["socket_timeout"] == 0.25 for a in addresses)


def test_a_sentinel_url_without_a_service_is_refused() -> None:
    with pytest.raises(RedisUrlError, match="service name"):
        connect("redis+sentinel://127.0.0.1:26379", 0.25)


def test_a_cluster_client_is_made_on_first_use_and_unreachable_seeds_are_a_connection_error() -> (
    None
):
    client = connect("redis+cluster://geo:pw@127.0.0.1:1,127.0.0.1:2", 0.1)
    assert isinstance(client, LazyCluster) and is_cluster(client)
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    client.close()


def test_a_cluster_has_no_database_path() -> None:
    with pytest.raises(RedisUrlError, match="database 0"):
        connect("redis+cluster://127.0.0.1:7000/3", 0.25)


@pytest.mark.parametrize("url", ["localhost:6379", "http://x", "redis+nope://h", ""])
def test_other_schemes_are_refused_with_the_forms_geoproxy_reads(url: str) -> None:
    with pytest.raises(RedisUrlError, match="redis\\+sentinel://"):
        connect(url, 0.25)


def test_passwords_are_redacted_from_urls_in_messages() -> None:
    assert redact("rediss://geo:s3cret@h:1/0") == "rediss://geo:***@h:1/0"
    assert redact("redis+cluster://:pw@a:1,b:2") == "redis+cluster://:***@a:1,b:2"
    assert redact("redis://h:1/0") == "redis://h:1/0"
    with pytest.raises(RedisUrlError) as refused:
        connect("http://geo:s3cret@h", 0.25)
    assert "s3cret" not in str(refused.value)


def test_the_fast_path_tls_context_follows_the_url_options() -> None:
    strict = tls_context({})
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    loose = tls_context({"ssl_cert_reqs": "none"})
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    no_name = tls_context({"ssl_check_hostname": False})
    assert no_name.verify_mode == ssl.CERT_REQUIRED and not no_name.check_hostname
    assert fast_caller("rediss://h:1/0?ssl_check_hostname=false", 0.1) is not None
