"""HAProxy's Runtime API on ``stats socket``, through real clients, against haproxy 2.6.

One geoproxy host and one haproxy 2.6 run the same configuration (management guide, section 9.3
"Unix Socket commands"); socat one-shots send every command to both, and the answers must be the
same, byte for byte where clients parse them (volatile figures aside: pointers, expiry, ids).
Ansible's ``community.general.haproxy`` and ``hatop`` are driven as an operator would, and a
second geoproxy host shows that a change on one host's socket holds for the whole fleet.
``disable frontend`` is seen from a client: a new connection is refused, an established one is
served on, another frontend serves, and ``enable frontend`` restores the service.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Stack
from tests.support.backends import Backend
from tests.support.ports import free_ports
from tests.support.processes import ProcessRegistry
from tests.support.runtime_api import ask, start_haproxy, wait_for_socket
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e

CONFIG = """
global
    stats socket {sock} mode 600 level admin
    stats socket {user_sock} mode 600 level user
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend www
    bind 127.0.0.1:{port}
    default_backend app
frontend other
    bind 127.0.0.1:{other_port}
    default_backend app
backend app
    balance roundrobin
    stick-table type string len 64 size 100k expire 30m
    stick on req.cook(JSESSIONID)
    server s1 {s1} check inter 10s
    server s2 {s2}
"""


@dataclass
class Side:
    """One implementation under test: its admin and user sockets, and its HTTP port."""

    name: str
    sock: str
    user_sock: str
    port: int
    other_port: int  # frontend 'other'

    def ask(self, line: str) -> str:
        return ask(self.sock, line)

    def statuses(self) -> list[tuple[str, str, str]]:
        """(server, status, weight) of backend app's servers, from ``show stat``."""
        rows = [line.split(",") for line in self.ask("show stat").splitlines()[1:] if line]
        return [(r[1], r[17], r[18]) for r in rows if r[0] == "app" and r[1] != "BACKEND"]

    def frontend_status(self, name: str) -> str:
        rows = [line.split(",") for line in self.ask("show stat").splitlines()[1:] if line]
        return next(r[17] for r in rows if r[0] == name and r[1] == "FRONTEND")

    def get(self, path: str, cookie: str | None = None, port: int | None = None) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=5)
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.getheader("X-Server") or ""


@dataclass
class Pair:
    geoproxy: Side
    haproxy: Side
    backends: list[Backend]
    stack: Stack

    def both(self, line: str) -> tuple[str, str]:
        return self.geoproxy.ask(line), self.haproxy.ask(line)


@pytest.fixture(scope="module")
def pair(
    module_stack: Stack, process_registry: ProcessRegistry
) -> Iterator[Pair]:
    backends = module_stack.backends(2)
    gp_port, hap_port, gp_other, hap_other = free_ports(4)
    base = module_stack.directory
    sides = []
    for name, port, other in (("geoproxy", gp_port, gp_other), ("haproxy", hap_port, hap_other)):
        sides.append(Side(name, str(base / f"{name}.sock"), str(base / f"{name}-user.sock"),
                          port, other))
    texts = [_config(s, backends) for s in sides]
    module_stack.proxy(texts[0])
    wait_for_socket(sides[0].sock)
    haproxy = start_haproxy(process_registry, texts[1], base / "haproxy", sides[1].sock)
    try:
        yield Pair(sides[0], sides[1], backends, module_stack)
    finally:
        haproxy.stop()


def _config(side: Side, backends: list[Backend]) -> str:
    return CONFIG.format(sock=side.sock, user_sock=side.user_sock, port=side.port,
                         other_port=side.other_port, s1=backends[0].address,
                         s2=backends[1].address)


def _same(pair: Pair, line: str) -> str:
    ours, theirs = pair.both(line)
    assert ours == theirs, f"{line!r}\ngeoproxy: {ours!r}\nhaproxy:  {theirs!r}"
    return ours


def _same_statuses(pair: Pair) -> list[tuple[str, str, str]]:
    time.sleep(0.05)
    ours, theirs = pair.geoproxy.statuses(), pair.haproxy.statuses()
    assert ours == theirs
    return ours


ERRORS = [
    "get weight app/nope", "get weight nope/s1", "get weight app", "get weight",
    "set server app/s1 state bogus", "set server app/s1 state",
    "set server app/s1 weight 300", "set server app/s1 weight abc",
    "set server app/s1 weight -5%", "set server app/s1 weight 5x", "set server app/s1 weight",
    "set server app/s1 health foo", "set server app/s1 agent up", "set server app/s1 agent-addr x",
    "set server app/s1 agent-port 80", "set server app/s1 agent-send x",
    "set server app/s1 bogus", "set server app/s1", "set server app",
    "set server nope/s1 state drain", "set server app/nope state drain",
    "set weight app/s1", "disable server app/nope", "disable server app", "enable server",
    "set maxconn server app/s1 abc", "set maxconn server app/s1", "set maxconn server app/nope 1",
    "set maxconn server app", "shutdown sessions server app/nope", "shutdown sessions server app",
    "disable frontend nope", "disable frontend", "enable frontend www", "disable frontend app",
    "enable frontend", "operator; disable frontend www; enable frontend other",
    "show servers state nope", "show stat nope 1 -1",
    "show table nope", "clear table", "clear table nope", "set table nope key x",
    "set table app data.server_id 1", "set table app key xyz data.server_id abc",
    "set table app key xyz data.http_req_rate 3", "show table app data.server_id",
    "show table app data.server_id eq", "show table app data.http_req_rate eq 1",
    "show table app foo", "show table app key",
    "set timeout cli abc", "set timeout cli", "set timeout foo 1",
    "show backend", "show cli level", "operator;show cli level; set server app/s1 weight 1",
    "user; show cli level; get weight app/s1; set weight app/s1 1",
]


@pytest.mark.parametrize("line", ERRORS)
def test_an_answer_or_refusal_is_haproxys_word_for_word(pair: Pair, line: str) -> None:
    _same(pair, line)


@pytest.mark.parametrize("line", [
    "set server app/s1 state drain", "set server app/s1 weight 1", "disable server app/s1",
    "set weight app/s1 1", "set maxconn server app/s1 5", "shutdown sessions server app/s1",
    "show errors", "set table app key x data.server_id 1", "disable frontend www",
])
def test_a_user_level_socket_is_refused_what_haproxy_refuses_a_user(pair: Pair, line: str) -> None:
    ours = ask(pair.geoproxy.user_sock, line)
    assert ours == ask(pair.haproxy.user_sock, line)
    assert ours == "Permission denied\n\n"


def test_a_user_sees_table_headers_but_not_contents_and_no_addresses(pair: Pair) -> None:
    for side in (pair.geoproxy, pair.haproxy):
        assert ask(side.user_sock, "show table app").endswith(
            "# contents not dumped due to insufficient privileges\n\n")
        rows = [r.split(",") for r in ask(side.user_sock, "show stat").splitlines()[1:] if r]
        assert all(row[73] == "" for row in rows)  # addr, hidden from a user
    assert ask(pair.geoproxy.user_sock, "show cli level") == "user\n\n"


def test_show_stat_has_haproxys_columns_and_a_line_per_row(pair: Pair) -> None:
    ours, theirs = pair.both("show stat")
    assert ours.splitlines()[0] == theirs.splitlines()[0]
    width = ours.splitlines()[0].count(",")
    assert all(line.count(",") == width for line in ours.splitlines()[1:] if line)
    assert [r.split(",")[:2] for r in ours.splitlines()[1:]] == \
        [r.split(",")[:2] for r in theirs.splitlines()[1:]]
    # the filter form hatop uses: IID TYPE SID (4: servers only)
    iid = next(r.split(",")[27] for r in ours.splitlines() if r.startswith("app,s1,"))
    servers = pair.geoproxy.ask(f"show stat {iid} 4 -1").splitlines()[1:]
    assert [r.split(",")[1] for r in servers if r] == ["s1", "s2"]


def test_show_info_has_the_fields_hatop_needs_and_a_version_ansible_reads_as_2_6(
    pair: Pair,
) -> None:
    info = pair.geoproxy.ask("show info")
    for field in ("Name", "Version", "Release_date", "Nbproc", "Process_num", "Pid", "Uptime",
                  "Maxconn", "CurrConns", "Maxpipes", "PipesUsed", "Tasks", "Run_queue", "node"):
        assert re.search(rf"^{field}: \S", info, re.M), field
    version = [x for x in info.splitlines() if "Version:" in x][0]
    assert version.partition(":")[2].strip().split(".", 3)[:2] == ["2", "6"]
    assert "geoproxy" in version


def test_server_states_and_weights_change_as_in_haproxy(pair: Pair) -> None:
    steps: list[tuple[str, list[tuple[str, str, str]]]] = [
        ("set server app/s1 state drain", [("s1", "DRAIN", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 state maint", [("s1", "MAINT", "1"), ("s2", "no check", "1")]),
        # leaving MAINT: running, one failed check away from DOWN, until the next check passes
        ("set server app/s1 state ready", [("s1", "UP 1/3", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 health up", [("s1", "UP", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 weight 0", [("s1", "UP", "0"), ("s2", "no check", "1")]),
        ("set server app/s1 weight 100%", [("s1", "UP", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 health stopping", [("s1", "NOLB", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 health down", [("s1", "DOWN", "1"), ("s2", "no check", "1")]),
        ("set server app/s1 health up", [("s1", "UP", "1"), ("s2", "no check", "1")]),
        ("set server app/s2 health down", [("s1", "UP", "1"), ("s2", "DOWN", "1")]),
        ("set server app/s2 health up", [("s1", "UP", "1"), ("s2", "no check", "1")]),
        ("disable server app/s1", [("s1", "MAINT", "1"), ("s2", "no check", "1")]),
        ("enable server app/s1", [("s1", "UP 1/3", "1"), ("s2", "no check", "1")]),
        ("set weight app/s1 0;set server app/s1 health up",
         [("s1", "UP", "0"), ("s2", "no check", "1")]),
        ("set weight app/s1 1", [("s1", "UP", "1"), ("s2", "no check", "1")]),
    ]
    for line, expected in steps:
        answer = _same(pair, line)
        assert set(answer) <= {"\n"}  # a successful set answers nothing
        assert _same_statuses(pair) == expected, line
    assert _same(pair, "get weight app/s1") == "1 (initial 1)\n\n"
    _same(pair, "set maxconn server app/s1 10")
    _same(pair, "shutdown sessions server app/s1")
    _same(pair, "get weight app/s1; show backend;get weight app/s2")


def _servers_state(text: str) -> list[list[str]]:
    """``show servers state`` without the proxy id, the seconds since the last change, and an
    unchecked server's health counter (HAProxy keeps one that nothing reads; geoproxy
    reports its 'rise' until an operator sets it)."""
    rows = [line.split(" ") for line in text.splitlines()[2:] if line]
    return [row[1:9] + row[10:12] + (row[12:13] if row[13] != "0" else []) + row[13:]
            for row in rows]


def test_show_servers_state_matches_haproxys_version_1_format(pair: Pair) -> None:
    _same(pair, "set server app/s2 state drain")
    try:
        ours, theirs = pair.both("show servers state app")
        assert ours.splitlines()[:2] == theirs.splitlines()[:2]
        assert _servers_state(ours) == _servers_state(theirs)
    finally:
        _same(pair, "set server app/s2 state ready")


def _entries(text: str) -> list[str]:
    """``show table`` lines without the entry's address and its expiry."""
    return [re.sub(r"^0x[0-9a-f]+: | exp=\d+", "", line) for line in text.splitlines()]


def test_stick_tables_show_set_and_clear_as_in_haproxy(pair: Pair) -> None:
    _same(pair, "clear table app")  # (haproxy keeps the entry a refused 'set table' created)
    # s1 alone takes new balanced requests: which worker's round robin answers does not matter
    _same(pair, "set server app/s2 state drain")
    time.sleep(0.6)  # (every worker's next snapshot)
    try:
        for side in (pair.geoproxy, pair.haproxy):
            side.get("/", cookie="JSESSIONID=abc")
    finally:
        _same(pair, "set server app/s2 state ready")
    time.sleep(0.1)
    # which server round robin gave the session depends on which of geoproxy's workers took
    # the request: make it the same on both sides
    _same(pair, "set table app key abc data.server_id 1")
    for line in ("show table", "show table app", "show table app key abc",
                 "show table app data.server_id gt 5"):
        ours, theirs = pair.both(line)
        assert _entries(ours) == _entries(theirs), line
    _same(pair, "set table app key xyz data.server_id 2")
    ours, theirs = pair.both("show table app key xyz")
    # haproxy leaves server_key unset ('-') when only server_id is set; geoproxy's entry
    # holds the server itself, so it names it
    assert _entries(theirs)[1] == "key=xyz use=0 server_id=2 server_key=-"
    assert _entries(ours)[1] == "key=xyz use=0 server_id=2 server_key=s2"
    # the entry routes requests that carry the key, on every worker
    assert {pair.geoproxy.get("/", cookie="JSESSIONID=xyz") for _ in range(4)} == {"s2"}
    _same(pair, "clear table app key xyz")
    assert _entries(pair.geoproxy.ask("show table app key xyz"))[1:] == [""]
    _same(pair, "clear table app")
    ours, theirs = pair.both("show table app")
    assert _entries(ours) == _entries(theirs)


def _conversation(path: str, lines: list[str]) -> bytes:
    """An interactive session as hatop holds one: each line sent once its answer came back
    (a prompt per command of the line, however the bytes were split on the way), then
    ``quit``; ``|`` marks where each line's answer ended."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(path)
    received = b""
    try:
        for line in lines:
            client.sendall(line.encode() + b"\n")
            answer = b""
            while answer.count(b"\n> ") < line.count(";") + 1:
                data = client.recv(65536)
                if not data:
                    break
                answer += data
            received += answer + b"|"
        client.sendall(b"quit\n")
        received += client.recv(65536)  # b"": the server hung up
    finally:
        client.close()
    return received


def test_interactive_mode_speaks_as_haproxys_prompt(pair: Pair) -> None:
    lines = ["prompt", "show backend", "set timeout cli 5", "get weight app/s1; show backend",
             "get weight app/nope"]
    ours = _conversation(pair.geoproxy.sock, lines)
    assert ours == _conversation(pair.haproxy.sock, lines)
    assert ours.startswith(b"\n> |# name\napp\n\n> |\n> |1 (initial 1)\n\n> # name")


ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook")
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: take s1 out, and wait until it is
      community.general.haproxy:
        {{state: disabled, host: s1, backend: app, socket: "{sock}", wait: true,
         wait_interval: 1, wait_retries: 5}}
    - name: put it back
      community.general.haproxy:
        {{state: enabled, host: s1, backend: app, socket: "{sock}", wait: true,
         wait_interval: 1, wait_retries: 5}}
    - name: drain it
      community.general.haproxy:
        {{state: drain, host: s1, backend: app, socket: "{sock}", wait: true,
         wait_interval: 1, wait_retries: 5}}
    - name: back, with a new weight
      community.general.haproxy:
        {{state: enabled, host: s1, backend: app, socket: "{sock}", weight: 5}}
"""


def _has_community_general() -> bool:
    done = subprocess.run(["ansible-doc", "-t", "module", "-l", "community.general"],
                          capture_output=True, text=True, timeout=120)
    return "community.general.haproxy" in done.stdout


def test_ansible_disables_drains_and_enables_a_server_as_against_haproxy(
    pair: Pair, tmp_path: os.PathLike[str]
) -> None:
    if ANSIBLE_PLAYBOOK is None or not _has_community_general():
        tool_missing("ansible-playbook with the community.general collection is not installed")
    outcomes = []
    for side in (pair.geoproxy, pair.haproxy):
        playbook = f"{tmp_path}/{side.name}.yml"
        with open(playbook, "w") as file:
            file.write(PLAYBOOK.format(sock=side.sock))
        done = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", playbook],
            capture_output=True, text=True, timeout=180,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0"},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        recap = done.stdout[done.stdout.index("PLAY RECAP"):]
        # leaving MAINT shows 'UP 1/3' until the next check (inter 10s) passes, on each side
        # whenever its own checker's turn comes: compare the states, not that moment
        statuses = [(name, re.sub(r"^UP \d+/\d+$", "UP", status), weight)
                    for name, status, weight in side.statuses()]
        outcomes.append((re.sub(r"\s+", " ", recap.splitlines()[1].split(":", 1)[1]).strip(),
                         side.ask("get weight app/s1"), statuses))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0].startswith("ok=4 changed=4")
    assert outcomes[0][1] == "5 (initial 1)\n\n"
    _same(pair, "set weight app/s1 1;set server app/s1 health up")


def test_hatop_shows_every_server_of_the_fleet(pair: Pair) -> None:
    hatop = shutil.which("hatop")
    if hatop is None:
        tool_missing("hatop is not installed")
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "COLUMNS": "160", "LINES": "40", "TERM": "xterm"}
    process = subprocess.Popen([hatop, "-s", pair.geoproxy.sock, "-i", "1"], stdin=terminal,
                               stdout=terminal, stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:
                    break
            if b"s2" in seen and b"BACKEND" in seen and b"L4OK" in seen:
                break
        screen = seen.decode("utf-8", "replace")
        for word in ("2.6.0-geoproxy", ">>> www", ">>> app", "s1", "s2", "BACKEND", "L4OK"):
            assert word in screen, screen[-3000:]
        os.write(controller, b"q")
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(controller)


def _connects(port: int) -> bool:
    """Whether a new TCP connection to ``port`` is accepted by the kernel (False: refused)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def test_disable_and_enable_frontend_answer_as_haproxy_and_show_stat_says_paused(
    pair: Pair,
) -> None:
    try:
        assert _same(pair, "disable frontend www") == "\n"
        assert _same(pair, "disable frontend www") == "All sockets are already disabled.\n\n"
        for side in (pair.geoproxy, pair.haproxy):
            assert (side.frontend_status("www"), side.frontend_status("other")) == \
                ("PAUSED", "OPEN"), side.name
        assert _same(pair, "enable frontend www") == "\n"
        assert pair.geoproxy.frontend_status("www") == "OPEN"
        assert _same(pair, "enable frontend www") == "All sockets are already enabled.\n\n"
    finally:
        pair.both("enable frontend www")


def _disabled_frontend_as_a_client_sees_it(side: Side) -> tuple[object, ...]:
    """Disable 'www' with a keep-alive connection open on it, look, enable it again."""
    kept = http.client.HTTPConnection("127.0.0.1", side.port, timeout=5)
    try:
        kept.request("GET", "/")
        kept.getresponse().read()
        established = kept.sock
        assert side.ask("disable frontend www") == "\n"
        new_connection = "accepted" if _connects(side.port) else "refused"
        kept.request("GET", "/")
        response = kept.getresponse()
        response.read()
        kept_answer = (response.status, kept.sock is established)
        other = side.get("/", port=side.other_port)  # another frontend serves on
        status = side.frontend_status("www")
    finally:
        kept.close()
        enabled = side.ask("enable frontend www")
    served_again = side.get("/")  # (geoproxy's workers resume within a poll: it waits)
    return new_connection, kept_answer, bool(other), status, enabled, bool(served_again)


def test_a_disabled_frontend_refuses_new_connections_and_serves_established_ones_as_haproxy(
    pair: Pair,
) -> None:
    ours = _disabled_frontend_as_a_client_sees_it(pair.geoproxy)
    theirs = _disabled_frontend_as_a_client_sees_it(pair.haproxy)
    assert ours == theirs == ("refused", (200, True), True, "PAUSED", "\n", True)


@pytest.fixture(scope="module")
def host_b(pair: Pair) -> Iterator[Side]:
    """A second geoproxy host of the fleet: the same configuration, on the same Redis."""
    port, other = free_ports(2)
    sock = str(pair.stack.directory / "b.sock")
    side = Side("b", sock, sock + "u", port, other)
    host = pair.stack.proxy(_config(side, pair.backends))
    wait_for_socket(sock)
    try:
        yield side
    finally:
        host.stop()


def test_disable_server_on_one_hosts_socket_stops_traffic_from_another_host_within_a_second(
    pair: Pair, host_b: Side
) -> None:
    b = host_b
    try:
        assert {b.get("/") for _ in range(6)} == {"s1", "s2"}
        assert pair.geoproxy.ask("disable server app/s1") == "\n"
        sent = time.monotonic()
        streak = 0
        while streak < 10 and time.monotonic() - sent < 3:
            streak = streak + 1 if b.get("/") == "s2" else 0
        took = time.monotonic() - sent
        assert streak == 10 and took < 1.0 + 10 * 0.05, took
        assert [s[:2] for s in b.statuses()] == [("s1", "MAINT"), ("s2", "no check")]
    finally:
        pair.geoproxy.ask("enable server app/s1;set server app/s1 health up")


def _until(wanted: bool, port: int, seconds: float = 3.0) -> float:
    """Seconds until a new connection to ``port`` is accepted (``wanted``) or refused."""
    started = time.monotonic()
    while _connects(port) != wanted and time.monotonic() - started < seconds:
        time.sleep(0.01)
    return time.monotonic() - started


def test_disable_frontend_on_one_hosts_socket_closes_it_on_another_host_within_a_heartbeat(
    pair: Pair, host_b: Side
) -> None:
    b = host_b
    try:
        assert pair.geoproxy.ask("disable frontend www") == "\n"
        closed = _until(False, b.port)
        assert b.frontend_status("www") == "PAUSED"
        assert b.get("/", port=b.other_port)
        assert b.ask("disable frontend www") == "All sockets are already disabled.\n\n"
        assert b.ask("enable frontend www") == "\n"  # on B's own socket, this time
        reopened = _until(True, pair.geoproxy.port)
        assert b.get("/") and pair.geoproxy.get("/")
        assert closed < 0.5 and reopened < 0.5, (closed, reopened)
    finally:
        pair.geoproxy.ask("enable frontend www")
