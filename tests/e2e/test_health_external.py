"""``option external-check`` under ``geoproxy run``: the command decides a server's health.

HAProxy configuration manual, 4.2 "external-check command": the command runs with the arguments
``<proxy_address> <proxy_port> <server_address> <server_port>`` and HAProxy's environment
(HAPROXY_PROXY_*, HAPROXY_SERVER_*, PATH from "external-check path"); exit status 0 passes the
check, anything else fails it. The test's command is a shell script that writes what it received
to a file and exits 1 while a file the test creates exists. haproxy 2.6 runs the same
configuration with the same script, and both must hand it the same arguments and environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet_harness import Fleet, running_fleet, tally, wait_until
from tests.support.haproxy_process import start_haproxy
from tests.support.ports import free_port
from tests.support.processes import ProcessRegistry

INTER, RISE, FALL = 0.2, 2, 2

CONFIG = """\
global
    external-check

defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 2s

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    option external-check
    external-check command {script}
    external-check path /usr/bin:/bin
    default-server check inter 200ms rise 2 fall 2
    server s1 {s1} maxconn 50
    server s2 {s2}
"""

SCRIPT = """\
#!/bin/sh
dir='{directory}'
{{ echo "ARGS $*"; env; }} > "$dir/seen.$HAPROXY_SERVER_NAME.tmp"
mv "$dir/seen.$HAPROXY_SERVER_NAME.tmp" "$dir/seen.$HAPROXY_SERVER_NAME"
if [ -e "$dir/fail.$HAPROXY_SERVER_NAME" ]; then exit 1; fi
exit 0
"""


def write_script(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "check.sh"
    script.write_text(SCRIPT.format(directory=directory))
    script.chmod(0o755)
    return script


def seen(directory: Path, server: str) -> list[str]:
    """What the script received: its arguments, then HAProxy's variables and PATH (the shell
    adds PWD, which depends on where each proxy runs)."""
    path = directory / f"seen.{server}"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return lines[:1] + sorted(line for line in lines[1:]
                              if line.startswith(("HAPROXY_", "PATH=")))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where geoproxy's check script lives and writes what it received."""
    return write_script(tmp_path_factory.mktemp("geoproxy-checks")).parent


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory,
    directory: Path,
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2"])
        script = directory / "check.sh"
        started.start_hosts(CONFIG.replace("{script}", str(script)), count=1, workers=2)
        yield started


def test_the_command_marks_a_server_down_then_up_and_traffic_follows(
    fleet: Fleet, directory: Path
) -> None:
    wait_until(lambda: fleet.oper("s1") == "up" and fleet.oper("s2") == "up",
               RISE * INTER + 5, "both servers are UP")
    assert set(tally(fleet.ports, 8)) == {"s1", "s2"}
    (directory / "fail.s1").touch()
    wait_until(lambda: fleet.oper("s1") == "down", FALL * INTER + 5, "s1 is DOWN")
    wait_until(lambda: set(tally(fleet.ports, 4)) == {"s2"}, 5, "traffic avoids s1")
    assert fleet.server("s1")["check_code"] == "PROCERR"
    (directory / "fail.s1").unlink()
    wait_until(lambda: fleet.oper("s1") == "up", RISE * INTER + 5, "s1 is UP again")
    wait_until(lambda: "s1" in tally(fleet.ports, 4), 5, "traffic reaches s1 again")
    logs = "".join(host.output() for host in fleet.hosts)
    assert "Server app/s1 is DOWN, reason: External check error, code: 1" in logs
    assert "Server app/s1 is UP, reason: External check passed" in logs


def test_the_command_gets_haproxys_arguments_and_environment(
    fleet: Fleet, directory: Path, process_registry: ProcessRegistry, tmp_path: Path
) -> None:
    wait_until(lambda: seen(directory, "s1") and seen(directory, "s2"), 5, "both were checked")
    s1, s2 = fleet.backends["s1"], fleet.backends["s2"]
    assert seen(directory, "s1") == [
        f"ARGS NOT_USED NOT_USED 127.0.0.1 {s1.port}",
        "HAPROXY_PROXY_ADDR=",
        "HAPROXY_PROXY_ID=2",
        "HAPROXY_PROXY_NAME=app",
        "HAPROXY_PROXY_PORT=",
        "HAPROXY_SERVER_ADDR=127.0.0.1",
        "HAPROXY_SERVER_CURCONN=0",
        "HAPROXY_SERVER_ID=1",
        "HAPROXY_SERVER_MAXCONN=50",
        "HAPROXY_SERVER_NAME=s1",
        f"HAPROXY_SERVER_PORT={s1.port}",
        "HAPROXY_SERVER_PROTO=h1",
        "HAPROXY_SERVER_SSL=0",
        "PATH=/usr/bin:/bin",
    ]
    # haproxy 2.6, same configuration, same script (in its own directory)
    theirs = write_script(tmp_path / "haproxy-checks")
    text = CONFIG.replace("{script}", str(theirs)).format(
        port=free_port(), s1=s1.address, s2=s2.address)
    text = text.replace("    external-check\n", "    external-check\n    insecure-fork-wanted\n")
    process = start_haproxy(process_registry, text, tmp_path / "haproxy")
    try:
        wait_until(lambda: seen(theirs.parent, "s1") and seen(theirs.parent, "s2"), 5,
                   "haproxy checked both servers")
    finally:
        process.stop()
    for server in ("s1", "s2"):
        assert seen(directory, server) == seen(theirs.parent, server)
