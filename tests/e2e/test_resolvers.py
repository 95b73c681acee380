"""``resolvers`` and ``server-template`` through ``geoproxy run``, resolving with the system's
resolver: the test gives geoproxy its own /etc/hosts (a private mount namespace, ``unshare
-rm``, as the corpus runner does) and rewrites it while geoproxy runs.

HAProxy manual: ``server-template``, section 5.3 (``resolvers``, ``hold valid``): each slot gets
its own address of the FQDN, a slot without one is in MAINT, and the addresses follow the name
every ``hold valid``.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ProcessRegistry
from tests.support.shaped_server import ShapedServer, start_shaped
from tests.support.tools import tool_missing

CONFIG = """
resolvers dns
    parse-resolv-conf
    hold valid 1s
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    balance roundrobin
    server-template w 3 app.test:{app_port} resolvers dns init-addr none
"""


def _unshare_works() -> bool:
    try:
        done = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _hosts(path: Path, *addresses: str) -> None:
    # written in place: the bind mount follows the file, not its name
    with open(path, "w") as handle:
        handle.write("127.0.0.1 localhost\n")
        handle.writelines(f"{address} app.test\n" for address in addresses)


def _answered_by(servers: list[ShapedServer], port: int, count: int) -> set[str]:
    before = {server.host: len(server.seen) for server in servers}
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/echo")
            connection.getresponse().read()
        finally:
            connection.close()
    return {server.host for server in servers if len(server.seen) > before[server.host]}


def _wait_for(what: str, check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def test_template_slots_follow_the_name_through_the_system_resolver(
    process_registry: ProcessRegistry, tmp_path: Path, redis_url: str
) -> None:
    if not _unshare_works():
        tool_missing("unshare -rm (a private mount namespace for the test's /etc/hosts)")
    port, app_port = free_ports(2)
    servers = [start_shaped(host, app_port) for host in ("127.0.0.5", "127.0.0.6", "127.0.0.7")]
    hosts = tmp_path / "hosts"
    _hosts(hosts, "127.0.0.5", "127.0.0.6")
    config = tmp_path / "geoproxy.cfg"
    config.write_text(CONFIG.format(port=port, app_port=app_port))
    argv = ["unshare", "-rm", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts), sys.executable, "-m", "geoproxy", "run", "-c", str(config),
            "--workers", "2", "--redis", redis_url]
    process = process_registry.start("geoproxy", argv, tmp_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        wait_for_port("127.0.0.1", port, 30, process.is_running)

        def slots() -> list[str | None]:
            return [client.hget(f"gp:{{b}}:srv:w{n}", "resolved")  # type: ignore[misc]
                    for n in (1, 2, 3)]

        _wait_for("two slots resolved, the third without an address",
                  lambda: sorted(map(str, slots())) == ["", "127.0.0.5", "127.0.0.6"])
        _wait_for("both addresses serve, nothing else",
                  lambda: _answered_by(servers, port, 6) == {"127.0.0.5", "127.0.0.6"})
        _hosts(hosts, "127.0.0.5", "127.0.0.7")
        _wait_for("the slot of the address that left takes the new one",
                  lambda: sorted(map(str, slots())) == ["", "127.0.0.5", "127.0.0.7"])
        _wait_for("every worker routes to the new address, none to the old",
                  lambda: _answered_by(servers, port, 6) == {"127.0.0.5", "127.0.0.7"})
    finally:
        client.close()
        process.stop()
        for server in servers:
            server.stop()
    assert "Traceback" not in process.output(), process.output()

