"""The whole-configuration pass: checks that need every section at once."""

from __future__ import annotations

from geoproxy.config import parse_text
from geoproxy.config.model import ProxyMode

TIMEOUTS = "    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"


def warnings_of(text: str) -> list[str]:
    return [w.message for w in parse_text(text, "t.cfg", env={}).warnings]


def test_a_proxy_without_a_mode_runs_in_tcp_mode_as_in_haproxy() -> None:
    config = parse_text(
        "defaults\n" + TIMEOUTS +
        "frontend f\n    bind :80\n    default_backend b\n"
        "backend b\n    server s 127.0.0.1:9001\n", "t.cfg", env={})
    assert [f.mode for f in config.frontends] == [ProxyMode.TCP]
    assert [b.mode for b in config.backends] == [ProxyMode.TCP]
    assert config.warnings == ()


def test_a_listen_without_timeouts_gets_one_warning_naming_it_a_proxy() -> None:
    messages = warnings_of(
        "defaults\n    mode http\n    timeout client 1s\n"
        "listen l\n    bind :80\n    server s 127.0.0.1:9001\n")
    assert len(messages) == 1
    assert messages[0].startswith("missing timeouts for proxy 'l'.\n   | While not properly")


def test_dynamic_cookies_without_a_key_are_pointed_out() -> None:
    messages = warnings_of(
        "defaults\n    mode http\n" + TIMEOUTS +
        "listen l\n    bind :80\n    cookie SRV insert dynamic\n    server s 127.0.0.1:9001\n")
    assert messages == [
        "backend 'l' : 'cookie SRV dynamic' needs a 'dynamic-cookie-key'; without one, "
        "servers without a 'cookie' value get no persistent clients."]


def test_a_clean_configuration_has_no_warning_at_all() -> None:
    assert warnings_of(
        "defaults\n    mode http\n" + TIMEOUTS +
        "listen l\n    bind :80\n    cookie SRV insert\n    server s 127.0.0.1:9001 cookie s\n"
    ) == []


def test_binds_on_different_ports_or_distinct_addresses_do_not_collide() -> None:
    config = parse_text(
        "defaults\n    mode http\n" + TIMEOUTS +
        "frontend a\n    bind 127.0.0.1:80\n    bind 127.0.0.2:80\n    bind [::1]:80\n"
        "    default_backend b\n"
        "frontend c\n    bind 127.0.0.1:81\n    default_backend b\n"
        "backend b\n    server s 127.0.0.1:9001\n", "t.cfg", env={})
    assert len(config.frontends[0].binds) == 3
