"""The stick-table sample fetches against what haproxy 2.6 returned for the same requests
(recorded with ``http-request set-var`` / ``http-response set-header`` on loopback)."""

from __future__ import annotations

from typing import Any

import pytest

from geoproxy.config.model import Sample, SampleFetch
from geoproxy.persistence.samples import SampleSource, fetch, hdr, req_cook, src, url_param

FETCHES = {
    "req_cook_A": Sample(SampleFetch.REQ_COOK, "A"),
    "req_cook": Sample(SampleFetch.REQ_COOK),
    "req_cook_B": Sample(SampleFetch.REQ_COOK, "B"),
    "hdr": Sample(SampleFetch.HDR, "x-user"),
    "hdr_1": Sample(SampleFetch.HDR, "x-user,1"),
    "hdr_m2": Sample(SampleFetch.HDR, "x-user,-2"),
    "url_param_id": Sample(SampleFetch.URL_PARAM, "id"),
    "url_param": Sample(SampleFetch.URL_PARAM),
    "url_param_j": Sample(SampleFetch.URL_PARAM, "jsessionid,;"),
    "res_cook_A": Sample(SampleFetch.RES_COOK, "A"),
    "res_cook": Sample(SampleFetch.RES_COOK),
    "res_cook_Path": Sample(SampleFetch.RES_COOK, "Path"),
}

# (request target, request headers, response Set-Cookie values, what haproxy 2.6 fetched)
RECORDED: list[tuple[str, list[tuple[str, str]], list[str], dict[str, Any]]] = [
    (
        "/",
        [("Cookie", "A=1; B=2; A=3")],
        ["A=x; Path=/", "A=y"],
        {
            "req_cook_A": "3",
            "req_cook": "1",
            "req_cook_B": "2",
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": "y",
            "res_cook": "x",
            "res_cook_Path": None,
        },
    ),
    (
        "/",
        [("Cookie", "A=1"), ("Cookie", "A=2, A=4")],
        ["B=1, A=z; Path=/"],
        {
            "req_cook_A": "4",
            "req_cook": "1",
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": "z",
            "res_cook": "1",
            "res_cook_Path": None,
        },
    ),
    (
        "/",
        [("Cookie", "$A=1; A; B=")],
        ["A"],
        {
            "req_cook_A": None,
            "req_cook": "",
            "req_cook_B": "",
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/",
        [("Cookie", ' A = "q;r" ; C=1')],
        ["A=1; Expires=Thu, 01 Jan 2037 00:00:00 GMT; Path=/"],
        {
            "req_cook_A": '"q;r"',
            "req_cook": '"q;r"',
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": "1",
            "res_cook": "1",
            "res_cook_Path": "/",
        },
    ),
    (
        "/",
        [("Cookie", "AB=1; A=")],
        ["X=1; Expires=Thu, 01 Jan 2037 00:00:00 GMT; Path=/p"],
        {
            "req_cook_A": "",
            "req_cook": "1",
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": "1",
            "res_cook_Path": "/p",
        },
    ),
    (
        "/",
        [("Cookie", "A=1;A=2"), ("X-User", "u1, u2"), ("X-User", "u3")],
        [],
        {
            "req_cook_A": "2",
            "req_cook": "1",
            "req_cook_B": None,
            "hdr": "u3",
            "hdr_1": "u1",
            "hdr_m2": "u2",
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/",
        [("x-user", '"a,b", c')],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": "c",
            "hdr_1": '"a,b"',
            "hdr_m2": '"a,b"',
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?id=1&id=2",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": "1",
            "url_param": "1",
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?x=1;id=2&id=3",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": "2",
            "url_param": "1",
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p;jsessionid=abc.s1?id=",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": "",
            "url_param": "",
            "url_param_j": "abc.s1?id=",
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?flag&id",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?ID=1",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": "1",
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p;jsessionid=abc.s1;x=y?q=1",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": "1",
            "url_param_j": "abc.s1",
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": None,
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
    (
        "/p?a=b=c",
        [],
        [],
        {
            "req_cook_A": None,
            "req_cook": None,
            "req_cook_B": None,
            "hdr": None,
            "hdr_1": None,
            "hdr_m2": None,
            "url_param_id": None,
            "url_param": "b=c",
            "url_param_j": None,
            "res_cook_A": None,
            "res_cook": None,
            "res_cook_Path": None,
        },
    ),
]


@pytest.mark.parametrize(
    ("target", "headers", "set_cookie", "expected"),
    RECORDED,
    ids=[r[0] + " " + str(r[1]) for r in RECORDED],
)
def test_every_fetch_returns_what_haproxy_returned(
    target: str, headers: list[tuple[str, str]], set_cookie: list[str], expected: dict[str, Any]
) -> None:
    source = SampleSource("127.0.0.1", target, headers, [("Set-Cookie", v) for v in set_cookie])
    assert {key: fetch(sample, source) for key, sample in FETCHES.items()} == expected


def test_req_cook_takes_the_last_occurrence_across_headers() -> None:
    headers = [("Cookie", "JSESSIONID=first"), ("Cookie", "x=1; JSESSIONID=last")]
    assert req_cook(headers, "JSESSIONID") == "last"


def test_req_cook_names_are_case_sensitive() -> None:
    assert req_cook([("Cookie", "jsessionid=1")], "JSESSIONID") is None


def test_hdr_returns_none_for_an_occurrence_out_of_range() -> None:
    assert hdr([("X-User", "a, b")], "x-user", 3) is None
    assert hdr([("X-User", "a, b")], "x-user", -3) is None


def test_url_param_needs_a_query_string() -> None:
    assert url_param("/path/id=1", "id") is None


def test_src_is_the_client_address_and_none_when_unknown() -> None:
    assert src("192.0.2.7") == "192.0.2.7"
    assert src("") is None


def test_hdr_without_a_header_name_finds_nothing() -> None:
    assert fetch(Sample(SampleFetch.HDR), SampleSource("127.0.0.1", "/", [("X", "1")])) is None


def test_res_hdr_reads_the_response_headers() -> None:
    source = SampleSource("127.0.0.1", "/", [("X-Id", "req")], [("X-Id", "res")])
    assert fetch(Sample(SampleFetch.RES_HDR, "x-id"), source) == "res"
