"""``option external-check``, ``external-check command|path`` and the global ``external-check``,
with HAProxy 2.6's errors (checked against haproxy -c); the external statuses in ``show servers
state``."""

from __future__ import annotations

import pytest

from geoproxy.admin.runtime_api.show import _server_state_line
from geoproxy.config import parse_text
from geoproxy.config.model import Config, ExternalCheck, Location
from geoproxy.errors import ConfigError
from tests.unit.test_admin_rows import server

GLOBAL = "global\n    external-check\n"
HEAD = "defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
FRONT = "frontend f\n    bind 127.0.0.1:9000\n    default_backend b\n"


def parse(text: str) -> Config:
    return parse_text(text, "t.cfg", env={})


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(error) for error in caught.value.errors]


def backend(body: str) -> str:
    return HEAD + FRONT + "backend b\n" + body + "    server s1 127.0.0.1:9001 check\n" \
        "    server s2 127.0.0.1:9002 check\n"


def test_the_option_with_its_command_and_path_makes_an_external_check() -> None:
    config = parse(GLOBAL + backend("    option external-check\n"
                                    "    external-check command /bin/true\n"
                                    "    external-check path /usr/bin:/bin\n"))
    assert config.global_.external_check
    b = config.backend("b")
    assert b is not None
    # the third proxy in the file (frontend f is the first, b the second): id 2
    assert b.external_check == ExternalCheck("/bin/true", "/usr/bin:/bin",
                                             Location("t.cfg", 11), 2, "", "")
    assert b.httpchk is None and b.tcp_check is None


def test_command_and_path_are_inherited_from_defaults_and_path_defaults_to_empty() -> None:
    config = parse(GLOBAL + HEAD + "    external-check command check.sh\n" + FRONT +
                   "backend b\n    option external-check\n    server s 127.0.0.1:1 check\n")
    b = config.backend("b")
    assert b is not None and b.external_check is not None
    assert (b.external_check.command, b.external_check.path) == ("check.sh", "")


def test_a_listen_gives_its_first_bind_as_the_proxy_address() -> None:
    config = parse(GLOBAL + HEAD + "listen l\n    bind :8080\n    bind 127.0.0.1:8081\n"
                   "    option external-check\n    external-check command /bin/true\n"
                   "    server s 127.0.0.1:1 check\n")
    b = config.backend("l")
    assert b is not None and b.external_check is not None
    check = b.external_check
    assert (check.proxy_id, check.proxy_addr, check.proxy_port) == (1, "0.0.0.0", "8080")


def test_the_last_check_option_wins() -> None:
    config = parse(GLOBAL + backend("    option external-check\n    option httpchk\n"
                                    "    external-check command /bin/true\n"))
    b = config.backend("b")
    assert b is not None and b.external_check is None and b.httpchk is not None
    config = parse(GLOBAL + backend("    option redis-check\n    option external-check\n"
                                    "    external-check command /bin/true\n"))
    b = config.backend("b")
    assert b is not None and b.external_check is not None and b.tcp_check is None


def test_the_option_needs_the_global_keyword_as_haproxy_does() -> None:
    assert errors(backend("    option external-check\n"
                          "    external-check command /bin/true\n")) == [
        "parsing [t.cfg:9] : Proxy 'b' : 'option external-check' unable to find required "
        "'global.external-check'."]


def test_the_option_needs_a_command() -> None:
    assert errors(GLOBAL + backend("    option external-check\n")) == [
        "parsing [t.cfg:11] : Proxy 'b' : 'option external-check' unable to find required "
        "'external-check command'."]


def test_haproxys_words_for_bad_lines() -> None:
    found = errors(GLOBAL + backend("    external-check command\n    external-check path\n"
                                    "    external-check bogus x\n"
                                    "    option external-check extra\n"))
    assert found == [
        "parsing [t.cfg:11] : 'external-check' : missing argument after 'command'.",
        "parsing [t.cfg:12] : 'external-check' : missing argument after 'path'.",
        "parsing [t.cfg:13] : 'external-check' only supports 'command' and 'path'. but got "
        "'bogus'.",
        "parsing [t.cfg:14] : 'option external-check' cannot handle unexpected argument "
        "'extra'.",
    ]
    assert errors("global\n    external-check foo\n" + backend("")) == [
        "parsing [t.cfg:2] : 'external-check' cannot handle unexpected argument 'foo'."]


def test_a_frontend_ignores_it_with_a_warning_as_haproxy_does() -> None:
    config = parse(GLOBAL + HEAD + "frontend f\n    bind 127.0.0.1:9000\n"
                   "    external-check command /bin/true\n")
    assert any("t.cfg:9" in str(w) and "external-check" in str(w) for w in config.warnings)


def test_show_servers_state_writes_haproxys_numbers_for_external_statuses() -> None:
    def fields(code: str) -> tuple[str, str]:
        line = _server_state_line(2, "b", 1, server(check=f"{code} x", health=3), 0).split()
        return line[10], line[11]  # srv_check_status, srv_check_result

    # HAProxy's enum: ... L7STS 17, PROCERR 18, PROCTOUT 19, PROCOK 20; result 3 passed, 2 failed
    assert fields("PROCOK") == ("20", "3")
    assert fields("PROCERR") == ("18", "2")
    assert fields("PROCTOUT") == ("19", "2")
