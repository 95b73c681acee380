"""``balance hash EXPR`` (geoproxy.balance.exprhash): a sample's value picks the server, the
same value the same server; no value falls back to round robin."""

from __future__ import annotations

import random

import pytest

from geoproxy.balance.exprhash import ExpressionError, extractor
from geoproxy.balance.factory import policy_for
from geoproxy.balance.policy import Policy, RequestKeys
from geoproxy.balance.view import ServerView
from geoproxy.config import parse_text

SERVERS = tuple(ServerView(f"s{i}", i, 1) for i in range(4))


def policy(expression: str) -> Policy:
    config = parse_text(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\nfrontend f\n    bind :9000\n    default_backend b\n"
        f"backend b\n    balance hash {expression}\n"
        + "".join(f"    server s{i} 127.0.0.1:{9001 + i}\n" for i in range(4)),
        "t.cfg", env={})
    return policy_for(config.backends[0], random.Random(1))


def keys(source: str = "192.0.2.1", sni: str | None = None, uri: str = "/") -> RequestKeys:
    return RequestKeys(source=source, uri=uri, header=lambda name: None,
                       destination_port=443, server_name=sni)


def chosen(expression: str, request: RequestKeys) -> str:
    return policy(expression).rank(SERVERS, request).candidates[0].name


def test_the_same_server_name_always_goes_to_the_same_server() -> None:
    names = [f"site{i}.example.com" for i in range(40)]
    first = [chosen("req.ssl_sni", keys(sni=name)) for name in names]
    assert first == [chosen("req.ssl_sni", keys(sni=name)) for name in names]
    assert len(set(first)) > 1


def test_no_value_falls_back_to_round_robin() -> None:
    balance = policy("req.ssl_sni")
    picks = [balance.rank(SERVERS, keys()).candidates[0].name for _ in range(4)]
    assert sorted(picks) == ["s0", "s1", "s2", "s3"]


@pytest.mark.parametrize("expression", ["src", "dst_port", "path", "url", "hdr(host)"])
def test_the_supported_fetches_extract_bytes(expression: str) -> None:
    request = RequestKeys("192.0.2.1", "/a?b", lambda name: "x.test", 443, None)
    assert extractor(expression)(request)


def test_converters_are_refused() -> None:
    with pytest.raises(ExpressionError):
        extractor("src,ipmask(24)")
