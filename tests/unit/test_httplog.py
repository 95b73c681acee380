"""The access log line in HAProxy's ``option httplog`` shape."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from geoproxy.proxy.httplog import Counters, RequestLog, Timers, accept_date, format_line


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def entry(**changes: object) -> RequestLog:
    base = RequestLog(
        client=("10.0.1.2", 33317),
        accepted=1233922454.655,
        frontend="http-in",
        backend="static",
        server="srv1",
        timers=Timers(10, 0, 30, 69, 109),
        status=200,
        bytes_sent=2750,
        termination="--",
        cookie_request="V",
        cookie_response="N",
        counters=Counters(1, 1, 1, 1, 0),
        request_line="GET /index.html HTTP/1.1",
    )
    fields: dict[str, Any] = {f: getattr(base, f) for f in base.__slots__}
    fields.update(changes)
    return RequestLog(**fields)


def test_a_served_request_reads_as_haproxys_manual_example() -> None:
    assert format_line(entry()) == (
        "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 "
        '- - --VN 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"'
    )


def test_no_server_and_a_redispatch_show_as_haproxy_shows_them() -> None:
    line = format_line(
        entry(
            server=None,
            status=503,
            termination="SC",
            timers=Timers(0, 0, -1, -1, 3001),
            counters=Counters(1, 1, 1, 0, 3, redispatched=True),
        )
    )
    assert " static/<NOSRV> 0/0/-1/-1/3001 503 " in line
    assert " SCVN 1/1/1/0/+3 " in line


def test_quotes_and_control_characters_in_the_request_line_are_escaped() -> None:
    line = format_line(entry(request_line='GET /a"b\x01 HTTP/1.1'))
    assert line.endswith('"GET /a#22b#01 HTTP/1.1"')


def test_accept_date_has_milliseconds() -> None:
    assert accept_date(0.042) == "01/Jan/1970:00:00:00.042"
    assert os.environ["TZ"] == "UTC"


def test_captured_headers_stand_before_the_request_line_escaped_as_haproxy_does() -> None:
    from dataclasses import replace

    from geoproxy.proxy.httplog import RequestLog, Timers, format_line

    entry = RequestLog(("127.0.0.1", 1), 0.0, "f", "b", "s", Timers(0, 0, 0, 0, 0), 200, 10,
                       "--", request_line="GET / HTTP/1.1")
    plain = format_line(entry)
    captured = format_line(replace(entry, captures=("a|b", None), res_captures=('"x"',)))
    assert plain.endswith('0/0 "GET / HTTP/1.1"')
    assert captured.endswith('0/0 {a#7Cb|} {#22x#22} "GET / HTTP/1.1"')
