"""The tunnel after a protocol switch (geoproxy.runtime.tunnel), on gevent socket pairs.

HAProxy configuration manual, ``timeout tunnel``: inactivity in both directions ends it; a
side's end of stream is passed on as a half-close, and the tunnel ends when both are done.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gevent
import pytest
from gevent import socket as gsocket

from geoproxy.runtime.tunnel import BUFFER_SIZE, Tunnel, TunnelReport, run_tunnel


@dataclass
class Ends:
    client: gsocket.socket  # the client's own end
    server: gsocket.socket  # the server's own end
    tunnel: gevent.Greenlet  # returns the TunnelReport

    def report(self, timeout: float = 5.0) -> TunnelReport:
        result: TunnelReport = self.tunnel.get(timeout=timeout)
        return result


Start = Callable[..., Ends]  # (timeout, to_server=b"", to_client=b"") -> Ends


@pytest.fixture
def open_tunnel() -> Iterator[Start]:
    made: list[gsocket.socket] = []

    def start(timeout: float | None, to_server: bytes = b"", to_client: bytes = b"") -> Ends:
        client, client_proxy = gsocket.socketpair()
        server_proxy, server = gsocket.socketpair()
        made.extend((client, client_proxy, server_proxy, server))
        for sock in (client, server):
            sock.settimeout(5.0)
        greenlet = gevent.spawn(
            run_tunnel,
            client_proxy,
            server_proxy,
            to_server=to_server,
            to_client=to_client,
            timeout=timeout,
        )
        return Ends(client, server, greenlet)

    yield start
    for sock in made:
        sock.close()


def read_exactly(sock: gsocket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def test_bytes_flow_both_ways_and_held_bytes_go_first(open_tunnel: Start) -> None:
    ends: Ends = open_tunnel(None, to_server=b"held", to_client=b"greeting")
    assert read_exactly(ends.server, 4) == b"held"
    assert read_exactly(ends.client, 8) == b"greeting"
    big = bytes(range(256)) * (BUFFER_SIZE // 64)  # four buffers' worth
    sender = gevent.spawn(ends.client.sendall, big)
    assert read_exactly(ends.server, len(big)) == big
    sender.get(timeout=5)
    ends.server.sendall(b"back")
    assert read_exactly(ends.client, 4) == b"back"
    ends.client.close()
    ends.server.close()
    assert ends.report() == TunnelReport(4 + len(big), 8 + 4, "--")


def test_a_half_close_is_passed_on_and_the_other_way_keeps_flowing(open_tunnel: Start) -> None:
    ends: Ends = open_tunnel(None)
    ends.client.sendall(b"last words")
    ends.client.shutdown(socket.SHUT_WR)
    assert read_exactly(ends.server, 10) == b"last words"
    assert ends.server.recv(10) == b""  # the server sees the client's end of stream
    ends.server.sendall(b"reply after the half-close")
    assert read_exactly(ends.client, 26) == b"reply after the half-close"
    assert not ends.tunnel.ready()
    ends.server.shutdown(socket.SHUT_WR)
    assert ends.client.recv(10) == b""  # and the client the server's
    assert ends.report() == TunnelReport(10, 26, "--")


def test_a_tunnel_idle_both_ways_ends_after_its_timeout(open_tunnel: Start) -> None:
    ends: Ends = open_tunnel(0.3)
    for _ in range(4):  # traffic either way keeps it open
        gevent.sleep(0.15)
        ends.server.sendall(b"x")
        assert ends.client.recv(1) == b"x"
    began = time.monotonic()
    report = ends.report()
    assert 0.25 <= time.monotonic() - began < 2.0
    assert report == TunnelReport(0, 4, "cD")


def test_cut_ends_a_tunnel_both_ways_at_once() -> None:
    client, client_proxy = gsocket.socketpair()
    server_proxy, server = gsocket.socketpair()
    try:
        tunnel = Tunnel(client_proxy, server_proxy, timeout=None)
        running = gevent.spawn(tunnel.run)
        client.sendall(b"ab")
        server.settimeout(5.0)
        assert read_exactly(server, 2) == b"ab"
        tunnel.cut()
        assert running.get(timeout=5) == TunnelReport(2, 0, "DD")
    finally:
        for sock in (client, client_proxy, server_proxy, server):
            sock.close()


def test_once_one_side_is_done_the_fin_timeout_ends_an_idle_tunnel() -> None:
    """``timeout client-fin`` / ``server-fin``: a half-closed tunnel that stays idle ends after
    the fin timeout, though the tunnel's own timeout is much longer."""
    client, client_proxy = gsocket.socketpair()
    server_proxy, server = gsocket.socketpair()
    try:
        tunnel = Tunnel(client_proxy, server_proxy, timeout=30.0, fin_timeout=0.3)
        greenlet = gevent.spawn(tunnel.run)
        client.shutdown(socket.SHUT_WR)  # the client is done sending; the server stays silent
        started = time.monotonic()
        report: TunnelReport = greenlet.get(timeout=5)
        assert report.ending == "cD"
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        for sock in (client, client_proxy, server_proxy, server):
            sock.close()
