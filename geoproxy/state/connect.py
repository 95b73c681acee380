"""One Redis client for the fleet state, from one URL: a single server, Sentinel or Cluster.

URL forms (user and password are percent-encoded; both are optional, a password alone is the
``default`` user's, as ``AUTH password`` is):

- ``redis://[user:password@]host[:port][/db][?query]``: one server (``rediss://``: over TLS);
- ``unix://[user:password@]/path/to/redis.sock[?db=N]``: one server on a unix socket;
- ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/SERVICE[/db][?query]``: the
  master that the Sentinels at these addresses (port 26379 by default) name ``SERVICE``; the
  user and password are the data servers'; the Sentinels' own, if they require one, go in the
  query as ``sentinel_username`` and ``sentinel_password`` (``rediss+sentinel://``: TLS to both);
- ``redis+cluster://[user:password@]host[:port][,host[:port]...][?query]``: a Redis Cluster,
  discovered from any of these seed nodes (``rediss+cluster://``: TLS to every node).

The query takes redis-py's URL parameters, TLS ones included (``ssl_ca_certs``,
``ssl_cert_reqs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``...).

Rules:
1. Every client fails fast: the socket timeouts are the caller's, and a failed call is not
   retried behind the caller's back (a Cluster retries once, after it re-reads its slot map),
   so no request waits on Redis longer than about one timeout.
2. Making a client does no I/O, whatever the URL: a worker that starts while Redis is away
   serves from its local state (a Cluster client discovers its nodes on first use).
3. ``REDIS_ERRORS`` are the failures that mean "Redis is not there now" (unreachable, slow,
   busy running a long script, failing over, loading, read-only); callers fall back to local
   state on them and on nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode

import redis
import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import DefaultParser, SSLConnection
from redis.retry import Retry

# redis-py leaves these untyped; here they get the types geoproxy relies on.
parse_url: Callable[[str], dict[str, Any]] = redis.connection.parse_url
to_bool: Callable[[Any], bool | None] = redis.connection.to_bool
_Sentinel: Callable[..., Any] = redis.sentinel.Sentinel
_ClusterNode: Callable[[str, int], Any] = redis.cluster.ClusterNode


class RedisBusyError(redis.exceptions.ResponseError, redis.exceptions.TimeoutError):
    """``BUSY``: a script holds the server beyond ``busy-reply-threshold``. The server is slow,
    not wrong: a ``TimeoutError`` to callers (rule 3), still a ``ResponseError`` to redis-py."""


class _Parser(DefaultParser):  # type: ignore[misc,valid-type]
    """redis-py's reply parser, with ``BUSY`` replies raised as ``RedisBusyError`` (redis-py
    raises a plain ResponseError for them). A Cluster client cannot take a parser: there a
    BUSY node stays a ResponseError."""

    EXCEPTION_CLASSES = {**DefaultParser.EXCEPTION_CLASSES, "BUSY": RedisBusyError}


# A client of any topology. A RedisCluster is not a redis.Redis, but it takes the same commands
# (and pipelines) geoproxy sends; the state layer only uses that common part.
Client = redis.Redis

REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, auth, LOADING, no master known yet
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a demoted master (failover in progress)
    redis.exceptions.ClusterDownError,  # CLUSTERDOWN, MASTERDOWN
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,  # no node reachable, slot not covered
)

SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = SINGLE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES

_SENTINEL_PORT = 26379
_REDIS_PORT = 6379
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


class RedisUrlError(ValueError):
    """A Redis URL geoproxy cannot use; the message says what was expected."""


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise RedisUrlError(
            f"Redis URL {redact(url)!r}: expected a URL starting with "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    return scheme.lower()


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and error messages)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}"


def connect(url: str, timeout: float) -> Client:
    """A client for ``url`` (see the module doc) whose every socket operation gives up after
    ``timeout`` seconds. Raises ``RedisUrlError`` for a URL it cannot use."""
    scheme = scheme_of(url)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    try:
        if scheme in SENTINEL_SCHEMES:
            return _sentinel_client(url, {**common, "parser_class": _Parser})
        if scheme in CLUSTER_SCHEMES:
            return _cluster_client(url, common)
        return redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), parser_class=_Parser, **common
        )
    except ValueError as error:
        raise RedisUrlError(f"Redis URL {redact(url)!r}: {error}") from error


def is_cluster(client: Client) -> bool:
    """True for a Redis Cluster client, whose pipelines cannot carry keyless commands (TIME)."""
    return isinstance(client, RedisCluster | LazyCluster)


# -- multi-host URLs --------------------------------------------------------------------------


def _split(url: str) -> tuple[str, str, list[tuple[str, int]], str, str]:
    """(scheme, userinfo, [(host, port)], path, query) of a URL that may list several hosts,
    which ``urllib.parse`` does not accept."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    default = _SENTINEL_PORT if scheme.lower() in SENTINEL_SCHEMES else _REDIS_PORT
    addresses = [_address(item, default) for item in hosts.split(",") if item]
    if not addresses:
        raise ValueError("expected at least one host:port")
    return scheme.lower(), userinfo, addresses, path if slash else "", query


def _address(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"bad port in {text!r}")
    return host or "localhost", int(port) if port else default_port


def _node_kwargs(scheme: str, userinfo: str, db: str, query: str) -> dict[str, Any]:
    """redis-py's own reading of one node's URL: credentials, database, TLS and the query."""
    single = "rediss" if scheme.startswith("rediss") else "redis"
    at = "@" if userinfo else ""
    kwargs = parse_url(f"{single}://{userinfo}{at}localhost/{quote(db)}?{query}")
    kwargs.pop("host", None)
    if kwargs.pop("connection_class", None) is SSLConnection:
        kwargs["ssl"] = True
    return kwargs


def _sentinel_client(url: str, common: dict[str, Any]) -> Client:
    scheme, userinfo, sentinels, path, query = _split(url)
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("expected the master's service name after the hosts: .../SERVICE[/db]")
    pairs = parse_qsl(query)
    auth = {name[len("sentinel_") :]: value for name, value in pairs if name in _SENTINEL_AUTH}
    node = _node_kwargs(
        scheme, userinfo, db or "0", urlencode([p for p in pairs if p[0] not in _SENTINEL_AUTH])
    )
    tls = {name: value for name, value in node.items() if name.startswith("ssl")}
    sentinel_kwargs = {
        "socket_timeout": common["socket_timeout"],
        "socket_connect_timeout": common["socket_connect_timeout"],
        **auth,
        **tls,
    }
    manager = _Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
    return cast(
        Client,
        manager.master_for(service, retry=Retry(NoBackoff(), 0), **{**node, **common}),
    )


def _cluster_client(url: str, common: dict[str, Any]) -> Client:
    scheme, userinfo, seeds, path, query = _split(url)
    if path.strip("/"):
        raise ValueError("a Redis Cluster has only database 0: no path after the hosts")
    node = _node_kwargs(scheme, userinfo, "0", query)
    node.pop("db", None)
    startup = [_ClusterNode(host, port) for host, port in seeds]

    def make() -> RedisCluster:
        return RedisCluster(
            startup_nodes=startup, retry=Retry(NoBackoff(), 1), **{**node, **common}
        )

    return cast(Client, LazyCluster(make))


class LazyCluster:
    """A ``RedisCluster`` made on first use (rule 2): redis-py's asks the seed nodes for the
    slot map as it is made, and fails if none answers."""

    def __init__(self, make: Callable[[], RedisCluster]) -> None:
        self._make = make
        self._cluster: RedisCluster | None = None
        self._lock = threading.Lock()

    def _get(self) -> RedisCluster:
        with self._lock:
            if self._cluster is None:
                try:
                    self._cluster = self._make()
                except redis.exceptions.RedisClusterException as error:
                    raise redis.exceptions.ConnectionError(str(error)) from error
            return self._cluster

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
