"""geoproxy's WSGI app for a plain gunicorn command line:

    GEOPROXY_CONFIG=haproxy.cfg GEOPROXY_REDIS_URL=redis://127.0.0.1:6379/0 \\
        gunicorn -k geoproxy.runtime.worker.ProxyWorker -w 2 -b 127.0.0.1:8080 'geoproxy.wsgi:app()'

(``-k gevent`` works too, without HAProxy's client-side timeouts and error pages.) Each worker
builds its app after fork: it registers the configured servers (idempotent), starts its
background loops and serves. Without ``geoproxy run``'s master hooks, a worker that dies is
reaped by the others' heartbeats instead of at once.
"""

from __future__ import annotations

import os

from geoproxy.config import load
from geoproxy.proxy.app import ProxyApp
from geoproxy.resolve.startup import seed_addresses
from geoproxy.runtime.gunicorn_app import start_background, start_resolver, worker_id
from geoproxy.state.redis_store import RedisFleetState


def app() -> ProxyApp:
    config_path = os.environ.get("GEOPROXY_CONFIG")
    redis_url = os.environ.get("GEOPROXY_REDIS_URL")
    if not config_path or not redis_url:
        raise RuntimeError("geoproxy.wsgi needs GEOPROXY_CONFIG and GEOPROXY_REDIS_URL")
    config = load(config_path)
    fleet = RedisFleetState(redis_url, worker_id(os.getpid()))
    fleet.register(config.backends)
    seed_addresses(fleet.dns, config)  # init-addr ('last' keeps what other workers resolved)
    proxy = ProxyApp(config, fleet)
    start_background(proxy, worker_id(os.getpid()))
    start_resolver(proxy, worker_id(os.getpid()))
    return proxy
