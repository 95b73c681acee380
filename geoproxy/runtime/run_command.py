"""``geoproxy run``: load the configuration, find or start Redis, start gunicorn.

Without ``-c`` it runs the demo: three demo backends on 127.0.0.1:9001-9003 and
``config/demo.cfg``. Without a Redis URL it starts the embedded Redis on a unix socket in the
runtime directory, prints how to inspect it, and stops it on exit. Everything it started is
stopped when gunicorn's master exits (SIGTERM, SIGINT), and only by the master: gunicorn's
workers leave through the same stack after fork and must not stop the master's children.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from geoproxy.config import load
from geoproxy.config.model import Config
from geoproxy.errors import ConfigError
from geoproxy.runtime import cli
from geoproxy.runtime.gunicorn_app import GeoproxyApplication


def run(config_path: str | None, *, workers: int | None, redis_url: str | None) -> int:
    master_pid = os.getpid()
    with contextlib.ExitStack() as cleanup:
        if config_path is None:
            config_path = str(cli.DEMO_CONFIG)
            cleanup.enter_context(_only_in(master_pid, _demo_backends()))
        try:
            config = load(config_path)
        except ConfigError as error:
            for warning in error.warnings:
                print(f"[WARNING] {warning}", file=sys.stderr)
            for problem in error.errors:
                print(f"[ALERT] {problem}", file=sys.stderr)
            print(f"[ALERT] {config_path}: fatal errors, geoproxy does not start", file=sys.stderr)
            return 1
        for warning in config.warnings:
            print(f"[WARNING] {warning}", file=sys.stderr)
        url = redis_url or os.environ.get(cli.REDIS_ENV) or config.global_.redis_url
        if not url:
            url = cleanup.enter_context(_only_in(master_pid, _embedded_redis()))
        app = GeoproxyApplication(config, url, _workers(workers, config))
        app.register()
        _announce(config)
        try:
            app.run()
        except SystemExit as leaving:
            return int(leaving.code or 0) if isinstance(leaving.code, int) else 1
    return 0


def _workers(explicit: int | None, config: Config) -> int:
    if explicit:
        return explicit
    from_env = os.environ.get(cli.WORKERS_ENV)
    if from_env:
        return int(from_env)
    return config.global_.workers or cli.DEFAULT_WORKERS


@contextlib.contextmanager
def _only_in(master_pid: int, resource: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    """Enter ``resource`` here; leave it only in the process that entered it (the master)."""
    value = resource.__enter__()
    try:
        yield value
    finally:
        if os.getpid() == master_pid:
            resource.__exit__(None, None, None)


@contextlib.contextmanager
def _embedded_redis() -> Iterator[str]:
    from geoproxy.runtime.embedded_redis import EmbeddedRedis

    directory = cli.runtime_dir()
    server = EmbeddedRedis(runtime_dir=directory)
    server.start()
    url_file = directory / "redis.url"
    url_file.write_text(server.url + "\n")
    print(f"geoproxy: embedded Redis at {server.url} (inspect: {server.cli_hint})", flush=True)
    try:
        yield server.url
    finally:
        url_file.unlink(missing_ok=True)
        server.stop()


@contextlib.contextmanager
def _demo_backends() -> Iterator[str]:
    from geoproxy.demo.fleet import start_backends, stop_backends

    backends = start_backends(cli.DEMO_BACKENDS)
    names = ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in cli.DEMO_BACKENDS)
    print(f"geoproxy: demo backends {names}", flush=True)
    try:
        yield ""
    finally:
        stop_backends(backends)


def _announce(config: Config) -> None:
    for frontend in config.frontends:
        for bind in frontend.binds:
            host = "127.0.0.1" if bind.host in ("0.0.0.0", "", "*") else bind.host
            print(
                f"geoproxy: frontend {frontend.name} listening on http://{host}:{bind.port}/",
                flush=True,
            )
