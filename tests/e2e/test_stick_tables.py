"""Stick tables in Redis, through two running geoproxy processes (two "hosts", 2 gevent workers
each) that share one Redis.

HAProxy configuration manual, ``stick-table type ip|string [len N] size N [expire T]``,
``stick on``, ``stick match``, ``stick store-request``, ``stick store-response``, with the
samples ``req.cook``, ``res.cook``, ``src``, ``hdr`` and ``url_param``; checked against haproxy
2.6 where noted. geoproxy keeps entry K of table T as the Redis STRING ``gp:{T}:stick:K``
holding the server's name, with the table's ``expire`` as its TTL (state/keys.py), so every
worker of every host sees the same table, and a request still makes one Redis round trip:
lookups and ``stick on`` / ``store-request`` stores ride inside the acquire script.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import redis

from geoproxy.state.scripts import script_sha
from tests.support.ports import free_port, free_ports
from tests.support.proxy_process import ProxyProcess, start_proxy
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.redis_monitor import wire_command_lines
from tests.support.redis_server import RedisServer, flush_all
from tests.support.scripted_servers import CASE_HEADER, ScriptedServers
from tests.support.tomcat import module_processes

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
SERVERS = ("s1", "s2", "s3")
BACKENDS = {
    "app": ["balance roundrobin", "stick-table type string len 32 size 10k expire 30s",
            "stick on req.cook(JSESSIONID)", "stick store-response res.cook(JSESSIONID)"],
    "matchonly": ["balance roundrobin", "stick-table type string len 32 size 10k expire 2s",
                  "stick match req.cook(SID)", "stick store-response res.cook(SID)"],
    "by_src": ["balance roundrobin", "stick-table type ip size 1k expire 30s", "stick on src"],
    "by_hdr": ["balance roundrobin", "stick-table type string len 8 size 1k expire 30s",
               "stick match hdr(X-User)", "stick store-request hdr(X-User)"],
    "by_param": ["balance roundrobin", "stick-table type string len 32 size 1k expire 30s",
                 "stick on url_param(uid)"],
    "downed": ["balance roundrobin", "stick-table type string len 32 size 1k expire 30s",
               "stick on req.cook(JSESSIONID)"],
    "redispatch": ["balance first", "stick-table type string len 32 size 1k expire 30s",
                   "stick on req.cook(JSESSIONID)", "option redispatch", "retries 1"],
}


@dataclass
class Hosts:
    hosts: list[ProxyProcess]
    ports: list[dict[str, int]]
    servers: ScriptedServers
    redis: redis.Redis
    redis_url: str

    def connect(self, backend: str, host: int = 0) -> RawConnection:
        return RawConnection(HOST, self.ports[host][backend], timeout=5.0)

    def entry(self, table: str, key: str) -> tuple[str | None, int]:
        """What Redis holds for a stick-table entry: (server name, TTL in ms)."""
        name = f"gp:{{{table}}}:stick:{key}"
        server = cast(str | None, self.redis.get(name))  # decode_responses=True
        return server, int(self.redis.pttl(name))


def hosts_config(servers: ScriptedServers, ports: dict[str, int], dead: str) -> str:
    text = ["defaults\n    mode http\n    timeout connect 200ms\n"
            "    timeout client 10s\n    timeout server 10s\n"]
    for name, lines in BACKENDS.items():
        text.append(f"frontend {name}\n    bind {HOST}:{ports[name]}\n    default_backend {name}\n")
        body = "".join(f"    {line}\n" for line in lines)
        names = ("s1", "dead") if name == "redispatch" else SERVERS
        for server in names:
            address = dead if server == "dead" else servers.address(server)
            body += f"    server {server} {address}\n"
        text.append(f"backend {name}\n{body}")
    return "\n".join(text)


@pytest.fixture(scope="module")
def fleet(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    flush_all(redis_server.url)
    work: Path = tmp_path_factory.mktemp("stick")
    servers = ScriptedServers(SERVERS)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.hset("gp:{downed}:srv:s2", "oper", "down")  # as a health checker would have it
    dead = f"{HOST}:{free_port()}"
    try:
        with module_processes() as registry:
            hosts, all_ports = [], []
            for index in range(2):
                ports = dict(zip(BACKENDS, free_ports(len(BACKENDS)), strict=True))
                host_dir = work / f"host{index + 1}"
                host_dir.mkdir()
                config = hosts_config(servers, ports, dead)
                hosts.append(start_proxy(registry, config, host_dir, redis_server.url))
                all_ports.append(ports)
            yield Hosts(hosts, all_ports, servers, client, redis_server.url)
    finally:
        servers.stop()
        client.close()


def _case(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def _request(connection: RawConnection, case: str, cookie: str | None = None,
             target: str = "/", headers: tuple[tuple[str, str], ...] = ()) -> RawResponse:
    lines = [f"GET {target} HTTP/1.1", "Host: stick.test", f"{CASE_HEADER}: {case}"]
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    lines += [f"{name}: {value}" for name, value in headers]
    connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return connection.read_response()


def _everywhere(fleet: Hosts, backend: str, count: int = 12, cookie: str | None = None,
                target: str = "/", headers: tuple[tuple[str, str], ...] = ()) -> set[str | None]:
    """Who answered ``count`` requests, each on a new connection, alternating the hosts (so
    every worker of both hosts is likely to serve some)."""
    answered = set()
    for index in range(count):
        with fleet.connect(backend, host=index % 2) as connection:
            response = _request(connection, _case("everywhere"), cookie, target, headers)
            answered.add(response.header("X-Server"))
    return answered


def _new_session(fleet: Hosts, backend: str, name: str, value: str, host: int = 0) -> str:
    """One request whose server answers ``Set-Cookie: name=value``; who answered."""
    case = _case("new session")
    fleet.servers.script(case, 200, [("Set-Cookie", f"{name}={value}; Path=/; HttpOnly")])
    with fleet.connect(backend, host) as connection:
        response = _request(connection, case)
    answered = response.header("X-Server")
    assert answered in SERVERS and response.header("Set-Cookie") == (
        f"{name}={value}; Path=/; HttpOnly")
    return str(answered)


def test_store_response_learns_the_session_and_every_worker_of_every_host_sticks_to_it(
    fleet: Hosts,
) -> None:
    session = f"A{time.monotonic_ns()}"
    answered = _new_session(fleet, "app", "JSESSIONID", session)
    server, ttl = fleet.entry("app", session)
    assert server == answered and 29_000 < ttl <= 30_000
    assert _everywhere(fleet, "app", cookie=f"JSESSIONID={session}") == {answered}
    assert fleet.entry("app", session)[0] == answered


def test_the_very_next_request_finds_the_new_session_on_another_worker(fleet: Hosts) -> None:
    for attempt in range(6):
        session = f"N{attempt}x{time.monotonic_ns()}"
        answered = _new_session(fleet, "app", "JSESSIONID", session, host=attempt % 2)
        with fleet.connect("app", host=(attempt + 1) % 2) as connection:
            response = _request(connection, _case("next"), f"JSESSIONID={session}")
        assert response.header("X-Server") == answered


def test_stick_on_refreshes_the_entry_and_a_table_key_is_cut_to_len(fleet: Hosts) -> None:
    session = f"{time.monotonic_ns()}".ljust(40, "L")
    answered = _new_session(fleet, "app", "JSESSIONID", session)
    key = session[:32]
    assert fleet.entry("app", session) == (None, -2)
    assert fleet.entry("app", key)[0] == answered
    time.sleep(0.3)
    before = fleet.entry("app", key)[1]
    other_tail = key + "DIFFERENT-TAIL"  # the same first 32 characters: the same entry
    assert _everywhere(fleet, "app", 4, cookie=f"JSESSIONID={other_tail}") == {answered}
    assert fleet.entry("app", key)[1] > before + 200


def test_stick_match_refreshes_what_it_finds_and_never_stores(fleet: Hosts) -> None:
    unknown = f"U{time.monotonic_ns()}"
    assert len(_everywhere(fleet, "matchonly", 9, cookie=f"SID={unknown}")) > 1
    assert fleet.entry("matchonly", unknown) == (None, -2)

    session = f"M{time.monotonic_ns()}"
    answered = _new_session(fleet, "matchonly", "SID", session)
    assert fleet.entry("matchonly", session)[0] == answered
    time.sleep(0.8)
    assert fleet.entry("matchonly", session)[1] < 1_300
    # haproxy 2.6: a match touches the entry, so 'expire' counts from its last use.
    assert _everywhere(fleet, "matchonly", 2, cookie=f"SID={session}") == {answered}
    assert fleet.entry("matchonly", session)[1] > 1_800


def test_stick_on_src_keeps_a_client_address_on_one_server(fleet: Hosts) -> None:
    fleet.redis.delete("gp:{by_src}:stick:127.0.0.1")
    with fleet.connect("by_src") as connection:
        first = _request(connection, _case("src")).header("X-Server")
    assert fleet.entry("by_src", "127.0.0.1")[0] == first
    assert _everywhere(fleet, "by_src") == {first}


def test_stick_match_and_store_request_on_a_header(fleet: Hosts) -> None:
    user = f"u{time.monotonic_ns() % 10**7:07d}"  # as long as the table's len 8
    with fleet.connect("by_hdr") as connection:
        first = _request(connection, _case("hdr"), headers=(("X-User", user),))
    answered = first.header("X-Server")
    assert fleet.entry("by_hdr", user)[0] == answered
    assert _everywhere(fleet, "by_hdr", headers=(("X-User", user),)) == {answered}
    longer = user + "-and-more"  # cut to 8 characters: the same entry
    assert _everywhere(fleet, "by_hdr", 4, headers=(("X-User", longer),)) == {answered}
    assert fleet.entry("by_hdr", longer) == (None, -2)


def test_stick_on_a_url_parameter(fleet: Hosts) -> None:
    uid = f"{time.monotonic_ns()}"
    with fleet.connect("by_param") as connection:
        answered = _request(connection, _case("param"), target=f"/p?a=1&uid={uid}&b=2")
    server = answered.header("X-Server")
    assert fleet.entry("by_param", uid)[0] == server
    assert _everywhere(fleet, "by_param", target=f"/q?uid={uid}") == {server}
    assert len(_everywhere(fleet, "by_param", 9, target=f"/q?user={uid}")) > 1


def test_an_entry_naming_a_down_server_is_balanced_and_then_names_the_new_server(
    fleet: Hosts,
) -> None:
    session = f"D{time.monotonic_ns()}"
    fleet.redis.set(f"gp:{{downed}}:stick:{session}", "s2", px=30_000)
    answered = _everywhere(fleet, "downed", 1, cookie=f"JSESSIONID={session}")
    assert answered <= {"s1", "s3"}
    (server,) = answered
    assert fleet.entry("downed", session)[0] == server
    assert _everywhere(fleet, "downed", cookie=f"JSESSIONID={session}") == {server}


def test_after_a_redispatch_the_entry_names_the_server_that_answered(fleet: Hosts) -> None:
    session = f"R{time.monotonic_ns()}"
    fleet.redis.set(f"gp:{{redispatch}}:stick:{session}", "dead", px=30_000)
    with fleet.connect("redispatch") as connection:
        response = _request(connection, _case("redispatch"), f"JSESSIONID={session}")
    assert (response.status, response.header("X-Server")) == (200, "s1")
    server, ttl = fleet.entry("redispatch", session)
    assert server == "s1" and ttl > 29_000


@pytest.mark.parametrize("server_repeats_the_cookie", [False, True])
def test_a_sticky_request_costs_exactly_one_evalsha(
    fleet: Hosts, server_repeats_the_cookie: bool
) -> None:
    session = f"E{time.monotonic_ns()}"
    answered = _new_session(fleet, "app", "JSESSIONID", session)
    case = _case("steady")
    if server_repeats_the_cookie:
        fleet.servers.script(case, 200, [("Set-Cookie", f"JSESSIONID={session}; Path=/")])
    acquire = script_sha("acquire")
    requests = 20
    with fleet.connect("app") as connection, wire_command_lines(fleet.redis_url) as lines:
        for _ in range(requests):
            assert _request(connection, case, f"JSESSIONID={session}").header(
                "X-Server") == answered
    acquires = [line for line in lines if line.split(" ", 2)[:2] in (
        ["EVALSHA", acquire], ["evalsha", acquire])]
    assert len(acquires) == requests
    stick_key = f"gp:{{app}}:stick:{session}"
    assert all(stick_key in line for line in acquires), "the lookup rides in the script"
    assert [line for line in lines if stick_key in line and line not in acquires] == []
