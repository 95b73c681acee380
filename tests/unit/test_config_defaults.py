"""defaults sections and inheritance, as HAProxy 2.4+ does it (manual section 4)."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import BalanceAlgorithm, Config, HttpMode
from geoproxy.errors import ConfigError

TIMEOUTS = "    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"


def parse(text: str) -> Config:
    return parse_text(text, "t.cfg", env={})


def test_a_proxy_inherits_from_the_last_defaults_before_it_not_a_later_one() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    balance leastconn\n"
        "backend early\n    server s 127.0.0.1:9001\n"
        "defaults\n    mode http\n" + TIMEOUTS + "    balance first\n"
        "backend late\n    server s 127.0.0.1:9001\n"
        "frontend f\n    bind :80\n    default_backend early\n"
    )
    early, late = config.backend("early"), config.backend("late")
    assert early is not None and early.balance.algorithm is BalanceAlgorithm.LEASTCONN
    assert late is not None and late.balance.algorithm is BalanceAlgorithm.FIRST


def test_a_new_defaults_section_starts_from_haproxys_defaults_not_the_previous_one() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    retries 7\n    option redispatch\n"
        "defaults\n    mode http\n" + TIMEOUTS +
        "listen l\n    bind :80\n    server s 127.0.0.1:9001\n"
    )
    backend = config.backends[0]
    assert (backend.retries, backend.redispatch) == (3, False)


def test_from_names_the_defaults_to_inherit_and_defaults_can_chain() -> None:
    config = parse(
        "defaults base\n    mode http\n" + TIMEOUTS + "    retries 5\n"
        "defaults tuned from base\n    timeout server 9s\n"
        "defaults other\n    mode http\n" + TIMEOUTS + "    retries 1\n"
        "backend b from tuned\n    server s 127.0.0.1:9001\n"
        "frontend f from other\n    bind :80\n    default_backend b\n"
    )
    backend = config.backends[0]
    assert backend.retries == 5
    assert backend.timeouts.server == 9.0 and backend.timeouts.connect == 1.0


def test_acls_servers_and_rules_are_never_inherited() -> None:
    config = parse(
        "defaults named\n    mode http\n" + TIMEOUTS + "    acl is_api path_beg /api\n"
        "frontend f\n    bind :80\n    default_backend b\n"
        "backend b\n    server s 127.0.0.1:9001\n"
    )
    assert config.frontends[0].acls == () and config.backends[0].acls == ()
    with pytest.raises(ConfigError) as caught:
        parse(
            "defaults named\n    mode http\n    acl is_api path_beg /api\n"
            "frontend f\n    bind :80\n    use_backend b if is_api\n"
            "backend b\n    server s 127.0.0.1:9001\n"
        )
    assert "no such ACL : 'is_api'" in str(caught.value)


def test_default_server_applies_to_the_servers_that_follow_it_only() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    default-server inter 5s\n"
        "backend b\n    server before 127.0.0.1:9001\n"
        "    default-server check rise 7\n"
        "    server after 127.0.0.1:9002 rise 1\n"
        "    server last 127.0.0.1:9003\n"
        "frontend f\n    bind :80\n    default_backend b\n"
    )
    before, after, last = config.backends[0].servers
    assert (before.inter, before.check, before.rise) == (5.0, False, 2)
    assert (after.inter, after.check, after.rise) == (5.0, True, 1)
    assert (last.check, last.rise) == (True, 7)


def test_each_half_of_a_proxy_keeps_only_the_timeouts_of_its_side() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    timeout http-request 4s\n"
        "    timeout queue 3s\n"
        "listen l\n    bind :80\n    server s 127.0.0.1:9001\n"
    )
    frontend, backend = config.frontends[0], config.backends[0]
    assert (frontend.timeouts.client, frontend.timeouts.connect) == (1.0, None)
    assert frontend.timeouts.queue is None and frontend.timeouts.http_request == 4.0
    assert (backend.timeouts.client, backend.timeouts.queue) == (None, 3.0)
    assert backend.timeouts.http_request == 4.0


def test_a_listen_is_its_own_default_backend_unless_one_is_named() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS +
        "listen own\n    bind :80\n    server s 127.0.0.1:9001\n"
        "listen routed\n    bind :81\n    default_backend own\n    server s 127.0.0.1:9002\n"
    )
    assert [f.default_backend for f in config.frontends] == ["own", "own"]


def test_the_last_connection_mode_named_wins_and_no_only_cancels_the_current_one() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    option httpclose\n"
        "backend a\n    no option http-server-close\n    server s 127.0.0.1:9001\n"
        "backend b\n    no option httpclose\n    server s 127.0.0.1:9001\n"
        "backend c\n    option http-server-close\n    server s 127.0.0.1:9001\n"
        "frontend f\n    bind :80\n    default_backend a\n"
        "    use_backend b if TRUE\n    use_backend c if TRUE\n"
    )
    modes = [b.http_mode for b in config.backends]
    assert modes == [HttpMode.CLOSE, HttpMode.KEEP_ALIVE, HttpMode.SERVER_CLOSE]
    assert config.backends[2].http_server_close and not config.backends[2].http_keep_alive


def test_a_defaults_section_used_by_name_and_implicitly_gets_haproxys_warning() -> None:
    config = parse(
        "defaults base\n    mode http\n" + TIMEOUTS +
        "backend b1 from base\n    server s 127.0.0.1:9001\n"
        "backend b2\n    server s 127.0.0.1:9001\n"
        "frontend f from base\n    bind :80\n    default_backend b1\n"
    )
    # HAProxy repeats it on every later use, whichever the kind
    assert [(w.location.line, w.keyword) for w in config.warnings] == [
        (8, "backend"), (10, "frontend")]
    assert "is explicitly referenced by another proxy and implicitly used here" in str(
        config.warnings[0])


def test_a_defaults_section_inherits_options_that_a_proxy_can_cancel() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    option redispatch\n    option persist\n"
        "    cookie SRV insert\n"
        "backend b\n    no option redispatch\n    cookie OTHER prefix\n"
        "    server s 127.0.0.1:9001 cookie s\n"
        "frontend f\n    bind :80\n    default_backend b\n"
    )
    backend = config.backends[0]
    assert (backend.redispatch, backend.persist) == (False, True)
    assert backend.cookie is not None and backend.cookie.name == "OTHER"


def test_option_abortonclose_comes_from_defaults_and_no_option_cancels_it() -> None:
    config = parse(
        "defaults\n    mode http\n" + TIMEOUTS + "    option abortonclose\n"
        "backend kept\n    server s 127.0.0.1:9001\n"
        "backend cancelled\n    no option abortonclose\n    server s 127.0.0.1:9001\n"
        "listen own\n    bind :81\n    option abortonclose\n    server s 127.0.0.1:9001\n"
        "frontend f\n    bind :80\n    default_backend kept\n"
    )
    flags = {backend.name: backend.abortonclose for backend in config.backends}
    assert flags == {"kept": True, "cancelled": False, "own": True}
    # HAProxy 2.6 aborts only when the frontend has it too: from defaults, or a listen's own
    assert {f.name: f.abortonclose for f in config.frontends} == {"own": True, "f": True}
