"""Rows d and e: "the obvious proxy", what one writes in an afternoon with Werkzeug and urllib3.

Run under gunicorn with gevent workers. Environment:
- ``BENCH_BACKENDS``: ``host:port,host:port`` of the servers.
- ``BENCH_BALANCE``: ``roundrobin`` (row d, per worker) or ``leastconn`` (row e: through
  Redis, MGET of every server's count, INCR the least busy before, DECR after each request).
- ``BENCH_REDIS_URL``: the Redis of row e.

It streams both ways and drops hop-by-hop headers, and does nothing else a real proxy must
(no health, no persistence, no retries, no X-Forwarded-For): it is the floor to compare with.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from werkzeug.wrappers import Request, Response

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
BACKENDS = os.environ["BENCH_BACKENDS"].split(",")
BALANCE = os.environ.get("BENCH_BALANCE", "roundrobin")

POOL = urllib3.PoolManager(
    num_pools=len(BACKENDS),
    maxsize=128,
    retries=False,
    timeout=urllib3.Timeout(connect=5.0, read=30.0),
)
_next_backend = itertools.cycle(BACKENDS).__next__

if BALANCE == "leastconn":
    import redis

    REDIS = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    KEYS = [f"bench:inflight:{backend}" for backend in BACKENDS]


def _no_release() -> None:
    pass


def choose() -> tuple[str, Callable[[], object]]:
    """The backend for this request, and what to call when the request is over."""
    if BALANCE != "leastconn":
        return _next_backend(), _no_release
    counts = [int(count or 0) for count in REDIS.mget(KEYS)]
    index = counts.index(min(counts))
    REDIS.incr(KEYS[index])
    return BACKENDS[index], lambda: REDIS.decr(KEYS[index])


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    request = Request(environ)
    backend, release = choose()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    path = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    has_body = request.content_length or request.headers.get("Transfer-Encoding")
    try:
        upstream = POOL.request(
            request.method,
            f"http://{backend}{path}",
            body=request.stream if has_body else None,
            headers=headers,
            preload_content=False,
            redirect=False,
        )
    except urllib3.exceptions.HTTPError:
        release()
        return Response("bad gateway\n", 502)(environ, start_response)
    response = Response(
        upstream.stream(65536),
        status=upstream.status,
        headers=[(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP],
        direct_passthrough=True,
    )
    response.call_on_close(upstream.release_conn)
    response.call_on_close(release)
    return response(environ, start_response)
