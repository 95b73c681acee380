"""Fixtures shared by every test: a real Redis, demo backends, geoproxy as a process.

- ``redis_server`` (session): one real Redis-protocol server on a free loopback port.
- ``redis_url`` (function): its URL, every database emptied before the test.
- ``backends`` (factory): ``backends(count=2, names=None)`` starts demo backends on free ports.
- ``proxy`` (factory): ``proxy(config_text, workers=2, redis=None, env=None)`` runs
  ``geoproxy run`` (against the test's clean Redis unless told otherwise, with ``env`` added to
  its environment) and waits for its binds.
Everything a test starts is stopped by pid when the test ends, even if it crashed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.backends import Backend, start_backends
from tests.support.processes import REGISTRY, ProcessRegistry
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.redis_server import RedisServer, flush_all, start_redis_server

BackendsFactory = Callable[..., list[Backend]]
ProxyFactory = Callable[..., ProxyProcess]


@pytest.fixture(scope="session", autouse=True)
def _runtime_dir_of_our_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every ``geoproxy run`` a test starts keeps its embedded Redis and files under a directory
    of this test session's (``XDG_RUNTIME_DIR``), never beside a developer's own instance or
    another session's."""
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("rt"))
    yield
    if previous is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous


@pytest.fixture(scope="session")
def process_registry() -> Iterator[ProcessRegistry]:
    yield REGISTRY
    REGISTRY.stop_all()


@pytest.fixture(autouse=True)
def _stop_what_the_test_started(process_registry: ProcessRegistry) -> Iterator[None]:
    yield
    process_registry.stop_test_processes()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server, embedded = start_redis_server()
    try:
        yield server
    finally:
        embedded.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    flush_all(redis_server.url)
    return redis_server.url


@pytest.fixture
def backends(process_registry: ProcessRegistry, tmp_path: Path) -> Iterator[BackendsFactory]:
    started: list[Backend] = []

    def start(count: int = 2, names: Sequence[str] | None = None) -> list[Backend]:
        new = start_backends(process_registry, tmp_path / "backends", count, names)
        started.extend(new)
        return new

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def proxy(
    process_registry: ProcessRegistry, tmp_path: Path, redis_url: str
) -> Iterator[ProxyFactory]:
    started: list[ProxyProcess] = []

    def start(
        config_text: str,
        workers: int = 2,
        redis: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ProxyProcess:
        work_dir = tmp_path / f"proxy{len(started) + 1}"
        work_dir.mkdir()
        running = start_proxy(
            process_registry, config_text, work_dir, redis or redis_url, workers, env=env
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
