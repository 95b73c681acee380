"""Cookie header parsing and serialising: properties over arbitrary input (hypothesis), and the
persistence functions never raise nor produce CR/LF, whatever the client sends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from geoproxy.balance.view import ServerView
from geoproxy.config.model import CookieMode, CookiePolicy, Location
from geoproxy.persistence.cookie_header import (
    cookie_pairs,
    parse_set_cookie,
    segments,
    serialise_cookies,
)
from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.result import KEEP, PersistenceRequest

# RFC 6265 cookie-name (token) and cookie-octet characters
TOKEN = st.text(
    alphabet=st.sampled_from("!#%&'*+-.^_`|~" + "0123456789abcdefghijklmnopqrstuvwxyzABCXYZ"),
    min_size=1,
    max_size=12,
).filter(lambda name: not name.startswith("$"))
OCTETS = st.text(
    alphabet=st.sampled_from("!#$%&'()*+-./:<=>?@[]^_`{|}~0123456789abcdefXYZ"), max_size=16
)
PAIRS = st.lists(st.tuples(TOKEN, OCTETS), max_size=8)
ANY_HEADER = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=80
) | st.text(alphabet=st.sampled_from(' \t;,="\\$~|abSRV=s1'), max_size=40)

SERVERS = [ServerView("s1", 0, 1, cookie="s1"), ServerView("s2", 1, 1, cookie="s2")]
POLICIES = [
    CookiePolicy(
        "SRV",
        mode,
        Location("test", 1),
        indirect=indirect,
        nocache=True,
        maxidle=60.0 if mode is CookieMode.INSERT else None,
    )
    for mode in (CookieMode.INSERT, CookieMode.REWRITE, CookieMode.PREFIX, CookieMode.ROUTE)
    for indirect in (False, mode is not CookieMode.REWRITE)
]


@given(PAIRS)
def test_serialised_pairs_parse_back_to_the_same_pairs(pairs: list[tuple[str, str]]) -> None:
    assert cookie_pairs(serialise_cookies(pairs)) == pairs


@given(ANY_HEADER)
def test_parsing_is_idempotent_through_serialising(header: str) -> None:
    pairs = cookie_pairs(header)
    clean = [(n, v) for n, v in pairs if n and not set(n + v) & set(' \t;,="\\')]
    assert cookie_pairs(serialise_cookies(clean)) == clean


@given(ANY_HEADER)
def test_segments_cover_the_whole_header_between_delimiters(header: str) -> None:
    parts = list(segments(header))
    rebuilt = "".join((header[seg.start - 1] if seg.start else "") + seg.raw for seg in parts)
    assert rebuilt == header
    for seg in parts:
        assert seg.name == seg.name.strip(" \t")
        assert seg.value == seg.value.strip(" \t")


@given(ANY_HEADER)
def test_set_cookie_parsing_never_raises_and_renders_without_spaces_around_equal(
    value: str,
) -> None:
    pair = parse_set_cookie(value)
    if pair is not None:
        assert f"{pair.name}={pair.value}" in pair.render()


@settings(max_examples=300)
@given(
    ANY_HEADER,
    st.sampled_from(POLICIES),
    st.sampled_from(["GET", "POST"]),
    st.booleans(),
    st.floats(min_value=0, max_value=4e9),
)
def test_persistence_never_raises_nor_emits_cr_or_lf(
    header: str, policy: CookiePolicy, method: str, ignore: bool, now: float
) -> None:
    request = PersistenceRequest(method, cookie=header, ignore_persist=ignore)
    decision = read_request(policy, SERVERS, request, now)
    upstream = decision.upstream_cookie
    if upstream is not KEEP and upstream is not None:
        assert "\r" not in upstream and "\n" not in upstream
        assert upstream == upstream.strip(" \t") and upstream
    for server in SERVERS:
        response = [("Set-Cookie", header), ("Cache-Control", "max-age=5")]
        rewritten = rewrite_response(decision, server, 200, response, now)
        for _, value in rewritten.headers:
            assert "\r" not in value and "\n" not in value


@given(PAIRS)
def test_a_header_without_the_persistence_cookie_reaches_the_server_untouched(
    pairs: list[tuple[str, str]],
) -> None:
    header = serialise_cookies([(n, v) for n, v in pairs if n != "SRV"]) or None
    for policy in POLICIES:
        decision = read_request(policy, SERVERS, PersistenceRequest("GET", header), 0.0)
        assert decision.upstream_cookie is KEEP
