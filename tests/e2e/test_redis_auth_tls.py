"""Redis with an ACL user (Redis 6 ``AUTH user password``) and over TLS (``rediss://``), against
real servers that refuse anything else: the default user is off, and the TLS server has no plain
port. Both the fast path (raw sockets) and redis-py carry the fleet state; a wrong password or an
untrusted certificate leaves the proxy deciding locally, never failing a request.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from geoproxy.balance.policy import PickMode, Ranking
from geoproxy.config.model import Backend, Location, Server
from geoproxy.state.fastpath import fast_caller
from geoproxy.state.redis_store import RedisFleetState
from tests.support.backends import Backend as DemoBackend
from tests.support.http_client import get
from tests.support.ports import free_port
from tests.support.processes import ROOT, ProcessRegistry
from tests.support.proxy_process import ProxyProcess
from tests.support.redis_topologies import (
    RedisNode,
    TlsFiles,
    make_tls_files,
    need_tools,
    start_node,
    start_tls_node,
)

pytestmark = pytest.mark.e2e
need_tools("redis-server", "openssl")

USER, PASSWORD = "geo", "s3cret:/@"  # characters a URL must percent-encode
QUOTED = "s3cret%3A%2F%40"
ACL = ["--user", "default", "off", "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all"]
HERE = Location("test", 1)
BACKEND = Backend(
    name="app",
    location=HERE,
    servers=(
        Server(name="s1", host="127.0.0.1", port=1, location=HERE),
        Server(name="s2", host="127.0.0.1", port=2, location=HERE),
    ),
)


@dataclass(frozen=True, slots=True)
class Servers:
    acl: RedisNode  # plain TCP, ACL user required
    tls: RedisNode  # TLS only, ACL user required
    files: TlsFiles

    def acl_url(self, password: str = QUOTED) -> str:
        return f"redis://{USER}:{password}@127.0.0.1:{self.acl.port}/0"

    def tls_url(self, query: str | None = None) -> str:
        query = self.files.query() if query is None else query
        return f"rediss://{USER}:{QUOTED}@127.0.0.1:{self.tls.port}/0?{query}"


@pytest.fixture(scope="module")
def servers(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    directory = tmp_path_factory.mktemp("auth-tls")
    files = make_tls_files(directory / "tls")
    credentials = {"username": USER, "password": PASSWORD}
    acl = start_node(process_registry, directory / "acl", ACL, client_options=credentials)
    try:
        tls = start_tls_node(process_registry, directory / "tls-redis", files, ACL)
    except BaseException:
        acl.stop()
        raise
    try:
        yield Servers(acl, tls, files)
    finally:
        tls.stop()
        acl.stop()


def exercise(url: str) -> RedisFleetState:
    """Register, attach, acquire (fast path where there is one), claim a check lease and
    release (redis-py), as a worker does; returns the store, still open."""
    store = RedisFleetState(url, "host-a:1")
    store.register([BACKEND])
    store.attach([BACKEND])
    lease = store.acquire("app", Ranking(PickMode.FIRST_WITH_ROOM, store.view("app").servers))
    assert lease is not None and lease.shared, "counted fleet-wide"
    assert store.health.claim_checks("app", ["s1", "s2"], "checker-1") == {"s1", "s2"}
    store.release(lease)
    store.flush()
    return store


def stored_counts(node: RedisNode) -> dict[str, str]:
    with node.client() as client:
        return dict(client.hgetall("gp:{app}:total"))


@pytest.mark.parametrize("which", ["acl", "tls"])
def test_an_acl_user_and_its_password_carry_the_fleet_state_on_both_paths(
    servers: Servers, which: str
) -> None:
    node = servers.acl if which == "acl" else servers.tls
    with node.client() as client:
        client.flushall()
    url = servers.acl_url() if which == "acl" else servers.tls_url()
    assert fast_caller(url, 0.5) is not None, "the acquire takes the raw-socket path"
    store = exercise(url)
    assert not store.degraded
    (report,) = store.report()
    assert [(s.name, s.total, s.inflight) for s in report.servers] == [("s1", 1, 0), ("s2", 0, 0)]
    store.close()
    assert stored_counts(node) == {"s1": "1"}


def test_without_the_acl_password_every_request_is_decided_locally(servers: Servers) -> None:
    for url in (servers.acl_url("wrong"), f"redis://127.0.0.1:{servers.acl.port}/0"):
        store = RedisFleetState(url, "host-b:1")
        store.attach([BACKEND])
        assert store.degraded
        ranking = Ranking(PickMode.LEAST_LOADED, store.view("app").servers)
        leases = [store.acquire("app", ranking) for _ in range(4)]
        assert [(lease.server, lease.shared) for lease in leases if lease] == [
            ("s1", False),
            ("s2", False),
            ("s1", False),
            ("s2", False),
        ]
        store.close()


def test_tls_needs_the_servers_ca_unless_told_not_to_verify(servers: Servers) -> None:
    untrusted = RedisFleetState(servers.tls_url(query=""), "host-c:1")
    untrusted.attach([BACKEND])
    assert untrusted.degraded, "a certificate from an unknown CA is refused"
    fast = fast_caller(servers.tls_url(query=""), 0.5)
    assert fast is not None
    with pytest.raises(redis.exceptions.ConnectionError):
        fast.evalsha("0" * 40, [], [])
    untrusted.close()
    unverified = exercise(servers.tls_url(query="ssl_cert_reqs=none"))
    assert not unverified.degraded
    unverified.close()


def test_a_plain_client_gets_nothing_from_the_tls_port(servers: Servers) -> None:
    store = RedisFleetState(f"redis://{USER}:{QUOTED}@127.0.0.1:{servers.tls.port}/0", "h:1")
    store.attach([BACKEND])
    assert store.degraded
    store.close()


CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend main
    bind 127.0.0.1:{port}
    default_backend app

backend app
    server s1 {s1} check inter 500ms
"""


def test_geoproxy_run_and_state_over_tls_with_an_acl_user(
    servers: Servers,
    proxy: Callable[..., ProxyProcess],
    backends: Callable[..., list[DemoBackend]],
) -> None:
    with servers.tls.client() as client:
        client.flushall()
    (s1,) = backends(1)
    port = free_port()
    url = servers.tls_url()
    proxy(CONFIG.format(port=port, s1=s1.address), workers=1, redis=url)
    for _ in range(3):
        assert get(port, "/").status == 200
    for _ in range(20):  # totals travel with each worker's statistics, flushed once a second
        state = subprocess.run(
            [sys.executable, "-m", "geoproxy", "state", "--redis", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        row = next(line.split() for line in state.splitlines() if line.strip().startswith("s1 "))
        if row[7] == "3":
            break
        time.sleep(0.25)
    assert row[:4] == ["s1", s1.address, "ready", "up"], state
    assert row[7] == "3", state  # total
    with servers.tls.client() as client:
        assert client.hget("gp:{app}:stat:s1", "check_code"), "the health checker wrote too"


def test_geoproxy_run_with_a_wrong_password_refuses_to_start_and_hides_the_password(
    servers: Servers, tmp_path: Path
) -> None:
    config = tmp_path / "geoproxy.cfg"
    config.write_text(CONFIG.format(port=free_port(), s1="127.0.0.1:1"))
    url = servers.acl_url("not-the-password")
    finished = subprocess.run(
        [sys.executable, "-m", "geoproxy", "run", "-c", str(config), "--redis", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 1
    assert "cannot register the configuration: geoproxy does not start" in finished.stderr
    assert "not-the-password" not in finished.stderr + finished.stdout


def geoproxy_set(url: str, state: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geoproxy", "set", "server", "app/s1", "state", state,
         "--redis", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_geoproxy_set_needs_the_redis_credentials_and_changes_nothing_without_them(
    servers: Servers,
) -> None:
    with servers.acl.client() as client:
        client.flushall()
    store = RedisFleetState(servers.acl_url(), "host-d:1")
    store.register([BACKEND])
    store.close()
    for url in (servers.acl_url("not-the-password"), f"redis://127.0.0.1:{servers.acl.port}/0"):
        refused = geoproxy_set(url, "maint")
        assert refused.returncode == 1, refused
        assert "geoproxy set: cannot reach" in refused.stderr
        assert "not-the-password" not in refused.stderr + refused.stdout
        with servers.acl.client() as client:
            assert client.hget("gp:{app}:srv:s1", "admin") == "ready"
    done = geoproxy_set(servers.acl_url(), "maint")
    assert (done.returncode, done.stdout) == (0, "app/s1: state set to maint\n"), done
    with servers.acl.client() as client:
        assert client.hget("gp:{app}:srv:s1", "admin") == "maint"
