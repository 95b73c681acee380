"""parse_head keeps the heads it parsed (a server repeats its head for a second at a time):
a repeated head gives the same answer, in a headers list of its own."""

from __future__ import annotations

import pytest

from geoproxy.errors import BadResponse
from geoproxy.forward.response import BodyKind, parse_head

HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 14:46:45 GMT\r\n"
    b"Content-Length: 12\r\nConnection: keep-alive\r\nX-Server: s1 \t"
)


def test_a_repeated_head_is_parsed_alike_into_a_list_of_its_own() -> None:
    first = parse_head(HEAD, is_head=False)
    first.headers.append(("X-Added", "by the first request"))
    second = parse_head(bytes(HEAD), is_head=False)
    assert second.headers == [
        ("Server", "nginx"),
        ("Date", "Wed, 25 Nov 2026 14:46:45 GMT"),
        ("Content-Length", "12"),
        ("X-Server", "s1"),
    ]
    assert (second.status, second.body, second.length, second.keep_alive) == (
        200,
        BodyKind.LENGTH,
        12,
        True,
    )


def test_the_same_head_answering_head_has_no_body() -> None:
    assert parse_head(HEAD, is_head=False).body is BodyKind.LENGTH
    assert parse_head(HEAD, is_head=True).body is BodyKind.NONE
    assert parse_head(HEAD, is_head=False).body is BodyKind.LENGTH


def test_an_invalid_head_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(BadResponse):
            parse_head(b"HTTP/1.1 200 OK\r\nBad Name: x", is_head=False)
