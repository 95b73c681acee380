"""The tcplog line (geoproxy.tcp.tcplog) in HAProxy 2.6's TCP format."""

from __future__ import annotations

import time

from geoproxy.proxy.httplog import Counters
from geoproxy.tcp.tcplog import TcpLog, format_tcp_line


def test_a_tcp_session_line_has_haproxys_fields_in_order() -> None:
    accepted = time.mktime((2026, 11, 25, 14, 24, 7, 0, 0, -1)) + 0.123
    line = format_tcp_line(TcpLog(
        client=("192.0.2.7", 51234), accepted=accepted, frontend="fe", backend="be",
        server="s1", queue_ms=0, connect_ms=2, total_ms=5007, bytes_sent=212, termination="--",
        counters=Counters(process=3, frontend=2, backend=1, server=1, retries=1,
                          redispatched=True)))
    assert line == ("192.0.2.7:51234 [25/Nov/2026:14:24:07.123] fe be/s1 0/2/5007 212 -- "
                    "3/2/1/1/+1 0/0")


def test_a_session_without_a_server_says_nosrv_and_minus_one() -> None:
    line = format_tcp_line(TcpLog(("::1", 1), 0.0, "fe", "be", None, -1, -1, 3, 0, "SC"))
    assert " fe be/<NOSRV> -1/-1/3 0 SC 0/0/0/0/0 0/0" in line
