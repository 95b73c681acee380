"""``geoproxy run``: load the configuration, find or start Redis, start gunicorn.

Without ``-c`` it runs the demo: three demo backends on 127.0.0.1:9001-9003 and
``config/demo.cfg``, over HTTP on 8080 and HTTPS on 8443 with a self-signed certificate made
at each start (``geoproxy.demo.certificate``). Every ``bind`` is bound before anything
starts (``listeners.py``): a port in use ends the start at once, exit 1. Without a Redis URL
it starts the embedded Redis on a unix socket in the runtime directory (or in one of its own
when another run owns that one: ``instances.py``), prints how to inspect it, and stops it on
exit. Everything it started is stopped when gunicorn's master exits (SIGTERM, SIGINT), and
only by the master: gunicorn's workers leave through the same stack after fork and must not
stop the master's children.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from geoproxy.config import load
from geoproxy.config.model import Config, ProxyMode
from geoproxy.errors import ConfigError
from geoproxy.runtime import cli, instances
from geoproxy.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisBusy, EmbeddedRedisError
from geoproxy.runtime.gunicorn_app import GeoproxyApplication
from geoproxy.runtime.listeners import BindError, bind_all
from geoproxy.runtime.stats_socket import StatsSocketError, bind_stats_sockets
from geoproxy.state.connect import REDIS_ERRORS, RedisUrlError, redact

# A Redis URL geoproxy cannot use, or a Redis it cannot reach at start-up.
_NO_REDIS: tuple[type[Exception], ...] = (RedisUrlError, *REDIS_ERRORS)


def run(config_path: str | None, *, workers: int | None, redis_url: str | None) -> int:
    master_pid = os.getpid()
    demo = config_path is None
    config_path = str(cli.DEMO_CONFIG) if config_path is None else config_path
    if demo:  # the demo's HTTPS bind names it (geoproxy.demo.certificate)
        from geoproxy.demo.certificate import CERT_ENV, self_signed

        directory = instances.runtime_dir()
        directory.mkdir(parents=True, exist_ok=True)
        os.environ[CERT_ENV] = str(self_signed(directory / "demo-cert.pem"))
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
    # Bound first: a port in use stops the start before anything else starts (listeners.py).
    try:
        listeners = bind_all(config)
    except BindError as error:
        for failure in error.failures:
            print(f"[ALERT] {failure}", file=sys.stderr)
        print("[ALERT] some listeners failed to start: geoproxy does not start", file=sys.stderr)
        return 1
    try:
        stats_sockets = bind_stats_sockets(config)
    except StatsSocketError as error:
        for listener in listeners:
            listener.close()
        print(f"[ALERT] {error}", file=sys.stderr)
        print("[ALERT] some listeners failed to start: geoproxy does not start", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as cleanup:
        for listener in listeners:
            cleanup.callback(listener.close)
        if demo:
            _start_demo_backends(cleanup, master_pid)
        url = redis_url or os.environ.get(cli.REDIS_ENV) or config.global_.redis_url
        if not url:
            try:
                url = _start_embedded_redis(cleanup, master_pid)
            except EmbeddedRedisError as error:
                print(f"[ALERT] embedded Redis: {error}", file=sys.stderr)
                print("[ALERT] no Redis: geoproxy does not start", file=sys.stderr)
                return 1
        app = GeoproxyApplication(
            config, url, _workers(workers, config), listeners, stats_sockets
        )
        try:
            app.register()
        except _NO_REDIS as error:
            print(f"[ALERT] Redis {redact(url)}: {error}", file=sys.stderr)
            print(
                "[ALERT] cannot register the configuration: geoproxy does not start",
                file=sys.stderr,
            )
            return 1
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


def _in_master(master_pid: int, stop: Callable[[], None]) -> Callable[[], None]:
    """``stop``, made a no-op in any other process than the master (gunicorn's workers unwind
    the same stack after fork)."""

    def stop_if_master() -> None:
        if os.getpid() == master_pid:
            stop()

    return stop_if_master


def _start_embedded_redis(cleanup: contextlib.ExitStack, master_pid: int) -> str:
    """Start this run's embedded Redis in the runtime directory, or in a directory of its own
    when another live run owns that one (instances.py); every file it makes goes with it."""
    base = instances.runtime_dir()
    try:
        server = EmbeddedRedis(runtime_dir=base).start()
        directory = base
    except EmbeddedRedisBusy as busy:
        directory = instances.own_dir(base, master_pid)
        print(
            f"geoproxy: the embedded Redis in {base} belongs to another geoproxy run "
            f"(pid {busy.owner}): this one starts its own in {directory}",
            flush=True,
        )
        cleanup.callback(_in_master(master_pid, lambda: _remove_empty(directory)))
        server = EmbeddedRedis(runtime_dir=directory).start()
    cleanup.callback(_in_master(master_pid, server.stop))
    url_file = directory / instances.URL_NAME
    url_file.write_text(server.url + "\n")
    cleanup.callback(_in_master(master_pid, lambda: url_file.unlink(missing_ok=True)))
    print(f"geoproxy: embedded Redis at {server.url} (inspect: {server.cli_hint})", flush=True)
    return server.url


def _remove_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: something in it is not ours to remove
        directory.rmdir()


def _start_demo_backends(cleanup: contextlib.ExitStack, master_pid: int) -> None:
    from geoproxy.demo.fleet import start_backends, stop_backends

    backends = start_backends(cli.DEMO_BACKENDS)
    cleanup.callback(_in_master(master_pid, lambda: stop_backends(backends)))
    names = ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in cli.DEMO_BACKENDS)
    print(f"geoproxy: demo backends {names}", flush=True)


def _announce(config: Config) -> None:
    for frontend in config.frontends:
        for bind in frontend.binds:
            host = "127.0.0.1" if bind.host in ("0.0.0.0", "", "*") else bind.host
            scheme = "https" if bind.tls is not None else "http"
            where = (f"{scheme}://{host}:{bind.port}/" if frontend.mode is ProxyMode.HTTP
                     else f"tcp {host}:{bind.port}")
            print(f"geoproxy: frontend {frontend.name} listening on {where}", flush=True)
