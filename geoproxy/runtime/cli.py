"""``geoproxy run | check | state | top | set``: the command line.

geoproxy's own settings come, highest first, from the command line, the environment
(``GEOPROXY_REDIS_URL``, ``GEOPROXY_WORKERS``), the configuration's ``global`` section
(``redis-url``, ``workers``), and the defaults (an embedded Redis, 2 workers).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_WORKERS = 2
REDIS_ENV = "GEOPROXY_REDIS_URL"
WORKERS_ENV = "GEOPROXY_WORKERS"
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.cfg"
DEMO_BACKENDS = (("s1", 9001), ("s2", 9002), ("s3", 9003))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geoproxy",
        description="An HTTP/1.1 load balancer that reads HAProxy's configuration and shares "
        "its routing state through Redis.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the proxy (gunicorn with gevent workers)")
    run.add_argument("-c", "--config", help="HAProxy-syntax configuration (default: the demo)")
    run.add_argument("--workers", type=int, help=f"worker processes (env {WORKERS_ENV}, default 2)")
    run.add_argument("--redis", help=f"Redis URL (env {REDIS_ENV}; default: an embedded Redis)")

    check = commands.add_parser("check", help="validate a configuration, like haproxy -c")
    check.add_argument("-c", "--config", required=True)

    state = commands.add_parser("state", help="print every backend's servers as Redis has them")
    state.add_argument(
        "--redis",
        help=f"Redis URL (env {REDIS_ENV}; default: the embedded "
        "Redis of a running `geoproxy run`)",
    )
    top = commands.add_parser(
        "top",
        help="watch the whole fleet live, as hatop does (q quits)",
        description="Every frontend, backend and server of the fleet, live from Redis, as the "
        "stats page shows them. Press q to quit (or Ctrl-C).",
    )
    top.add_argument("--redis", help=f"Redis URL (env {REDIS_ENV}; default: the embedded "
                     "Redis of a running `geoproxy run`)")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    top.add_argument("--count", type=int, help="stop after this many frames")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    setter = commands.add_parser(
        "set", help="set a server's admin state or weight, fleet-wide (HAProxy's 'set server')"
    )
    setter.add_argument("what", choices=["server"])
    setter.add_argument("target", metavar="BACKEND/SERVER")
    setter.add_argument("field", choices=["state", "weight"])
    setter.add_argument("value", help="ready | drain | maint, or a weight 0-256 (or N%%)")
    setter.add_argument("--redis", help=f"Redis URL (env {REDIS_ENV})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        from geoproxy.config.check import check

        return check(args.config)
    if args.command == "state":
        from geoproxy.runtime.state_command import print_state

        return print_state(_state_redis_url(args.redis))
    if args.command == "top":
        from geoproxy.runtime.top_command import run_top

        return run_top(_state_redis_url(args.redis), args.interval, args.count, args.once)
    if args.command == "set":
        from geoproxy.runtime.set_command import set_server

        return set_server(_state_redis_url(args.redis), args.target, args.field, args.value)
    # gevent asks to be patched before ssl, sockets and redis-py are imported; the workers
    # inherit the master's modules, so the master patches before importing any of them.
    from gevent import monkey

    monkey.patch_all()
    from geoproxy.runtime.run_command import run

    return run(args.config, workers=args.workers, redis_url=args.redis)


def _state_redis_url(explicit: str | None) -> str:
    url = explicit or os.environ.get(REDIS_ENV)
    if url:
        return url
    from geoproxy.runtime.instances import AmbiguousInstance, default_url, runtime_dir

    try:
        url = default_url(runtime_dir())
    except AmbiguousInstance as several:
        print(f"geoproxy: {several}: pass --redis URL to choose one", file=sys.stderr)
        raise SystemExit(2) from None
    if url:
        return url
    print(
        "geoproxy state: no Redis URL: pass --redis URL, set GEOPROXY_REDIS_URL, or start "
        "`geoproxy run` (its embedded Redis is found automatically)",
        file=sys.stderr,
    )
    raise SystemExit(2)
