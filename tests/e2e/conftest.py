"""Fixtures of the end-to-end tests: geoproxy under gunicorn with gevent workers, real backends.

Starting a geoproxy takes about a second, so a module that asks several questions of one
configuration shares one ``Stack`` (``module_stack``): a private Redis, the backends and the
proxies the module starts, all stopped by pid when the module ends. Tests that change what
they run (signals, reloads) use the function-scoped ``proxy`` and ``backends`` fixtures of
tests/conftest.py instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from geoproxy.runtime.embedded_redis import EmbeddedRedis
from tests.support.backends import Backend, start_backends
from tests.support.processes import ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy


class Stack:
    """What one test module runs: its own Redis, backends and proxies (see the module doc)."""

    def __init__(self, registry: ProcessRegistry, directory: Path) -> None:
        self._registry = registry
        self._directory = directory
        self._redis = EmbeddedRedis().start()
        self.redis_url = self._redis.url
        self._backends: list[Backend] = []
        self._proxies: list[ProxyProcess] = []

    @property
    def directory(self) -> Path:
        return self._directory

    def backends(self, count: int = 2, names: Sequence[str] | None = None) -> list[Backend]:
        started = start_backends(
            self._registry, self._directory / "backends", count, names, outlive_test=True
        )
        self._backends.extend(started)
        return started

    def proxy(self, config_text: str, workers: int = 2) -> ProxyProcess:
        work_dir = self._directory / f"proxy{len(self._proxies) + 1}"
        work_dir.mkdir()
        running = start_proxy(
            self._registry, config_text, work_dir, self.redis_url, workers, outlive_test=True
        )
        self._proxies.append(running)
        running.wait_for_workers(workers)
        return running

    def stop(self) -> None:
        for proxy in self._proxies:
            proxy.stop()
        for backend in self._backends:
            backend.stop()
        self._redis.stop()


@pytest.fixture(scope="module")
def module_stack(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    stack = Stack(process_registry, tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop()
