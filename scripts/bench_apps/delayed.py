"""A server that answers every request after a fixed delay, for the leastconn comparison of
scripts/fleet_bench.py: ``python scripts/bench_apps/delayed.py PORT DELAY_MS``.

``GET /__count`` answers how many other requests it served (not counted itself). One gevent
process; SIGTERM stops it.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

served = [0]


def make_app(delay: float) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/__count":
            body = str(served[0]).encode()
        else:
            gevent.sleep(delay)
            served[0] += 1
            body = b"ok"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def main() -> int:
    port, delay_ms = int(sys.argv[1]), float(sys.argv[2])
    server = WSGIServer(("127.0.0.1", port), make_app(delay_ms / 1000), log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
