"""The keywords of issue 13's "smaller pieces", read with HAProxy 2.6's meaning: monitor-uri and
monitor fail, compression, unique-id-format/header, option http-buffer-request, stats in a
backend, server addresses without a port or with $VAR outside quotes, server-template,
resolvers sections and the server parameters naming them, an empty errorfile, http-reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoproxy.config import parse_text
from geoproxy.config.address import MAPPED_PORT, expand
from geoproxy.config.model import CompressionAlgorithm, Config, ResolvePrefer
from geoproxy.errors import ConfigError

HEAD = ("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\n")


def parse(body: str, env: dict[str, str] | None = None, path: str = "t.cfg") -> Config:
    return parse_text(HEAD + body, path, env=env or {})


def errors(body: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(body, env)
    return "\n".join(str(error) for error in caught.value.errors)


FRONT = "frontend f\n    bind :80\n    default_backend b\n"
BACK = "backend b\n    server s1 127.0.0.1:9001\n"


def test_monitor_uri_and_its_fail_conditions_belong_to_the_frontend() -> None:
    config = parse("frontend f\n    bind :80\n    monitor-uri /alive\n"
                   "    acl down hdr(x-down) yes\n    monitor fail if down\n"
                   "    monitor fail unless { src 10.0.0.0/8 }\n    default_backend b\n" + BACK)
    monitor = config.frontends[0].monitor
    assert monitor is not None and monitor.uri == "/alive" and len(monitor.fail) == 2


def test_monitor_uri_is_inherited_from_defaults_and_ignored_in_a_backend() -> None:
    config = parse_text(HEAD + "    monitor-uri /up\n" + FRONT
                        + "backend b\n    monitor-uri /x\n    server s 127.0.0.1:1\n",
                        "t.cfg", env={})
    assert config.frontends[0].monitor is not None
    assert config.frontends[0].monitor.uri == "/up"
    assert any("'monitor-uri' ignored because backend 'b' has no frontend capability" in str(w)
               for w in config.warnings)


@pytest.mark.parametrize(("line", "message"), [
    ("monitor fail", "'monitor fail' requires either 'if' or 'unless'"),
    ("monitor pass if TRUE", "'monitor' expects 'fail'."),
    ("monitor-uri", "'monitor-uri' expects an URI."),
    ("compression algo br", "'compression' : 'br' is not a supported algorithm"),
    ("compression minsize-res 10", "'compression' expects 'algo', 'type' or 'offload'."),
    ("unique-id-format %ci %cp", "expects only one argument, don't forget to escape spaces"),
    ("unique-id-format %[req.hdr(x)]", "sample '%[req.hdr(x)]' is not supported"),
    ("unique-id-format %bogus", "variable '%bogus' is not supported"),
    ("rate-limit sessions 10", "'rate-limit' is not supported by geoproxy"),
])
def test_wrong_lines_name_their_keyword_and_line(line: str, message: str) -> None:
    found = errors(f"frontend f\n    bind :80\n    {line}\n    default_backend b\n" + BACK)
    assert "t.cfg:8]" in found and message in found, found


def test_compression_lines_add_up_backend_first() -> None:
    config = parse("frontend f\n    bind :80\n    compression algo gzip\n"
                   "    compression type text/html\n    default_backend b\n"
                   "backend b\n    compression algo deflate raw-deflate gzip\n"
                   "    compression type text/css text/plain\n    compression offload\n"
                   "    server s 127.0.0.1:1\n")
    backend = config.backends[0].compression
    assert backend is not None
    assert backend.algorithms == (CompressionAlgorithm.DEFLATE, CompressionAlgorithm.RAW_DEFLATE,
                                  CompressionAlgorithm.GZIP)
    assert backend.types == ("text/css", "text/plain") and backend.offload
    frontend = config.frontends[0].compression
    assert frontend is not None and frontend.algorithms == (CompressionAlgorithm.GZIP,)


def test_unique_id_format_and_header_and_http_buffer_request() -> None:
    config = parse("frontend f\n    bind :80\n    unique-id-format %{+X}o\\ %ci:%cp_%Ts\n"
                   "    unique-id-header X-Request-ID\n    option http-buffer-request\n"
                   "    default_backend b\nbackend b\n    no option http-buffer-request\n"
                   "    server s 127.0.0.1:1\n")
    unique = config.frontends[0].unique_id
    assert unique is not None
    assert (unique.format, unique.header) == ("%{+X}o %ci:%cp_%Ts", "X-Request-ID")
    assert config.frontends[0].buffer_request and not config.backends[0].buffer_request


def test_stats_keywords_in_a_backend_configure_its_page_without_a_warning() -> None:
    config = parse(FRONT + "backend b\n    stats enable\n    stats uri /st\n"
                   "    stats auth a:b\n    server s 127.0.0.1:1\n")
    stats = config.backends[0].stats
    assert stats is not None and stats.uri == "/st" and stats.auths[0].user == "a"
    assert not [w for w in config.warnings if "stats" in w.keyword]


def test_a_server_without_a_port_maps_the_clients_destination_port() -> None:
    config = parse(FRONT + "backend b\n    server s1 10.0.0.1\n    server s2 [::1]\n"
                   "    server s3 app.example.com\n")
    ports = [(s.host, s.port, s.maps_port) for s in config.backends[0].servers]
    assert ports == [("10.0.0.1", MAPPED_PORT, True), ("::1", MAPPED_PORT, True),
                     ("app.example.com", MAPPED_PORT, True)]


def test_a_checked_server_without_any_port_is_refused_as_haproxy_refuses_it() -> None:
    found = errors(FRONT + "backend b\n    server s1 10.0.0.1 check\n")
    assert "server 's1' has neither service port nor check port" in found
    parse(FRONT + "backend b\n    server s1 10.0.0.1 check port 8080\n")


@pytest.mark.parametrize(("text", "env", "expanded"), [
    ("$HOST:$PORT", {"HOST": "10.0.0.1", "PORT": "81"}, "10.0.0.1:81"),
    ("${HOST}:${PORT}", {"HOST": "a", "PORT": "1"}, "a:1"),
    ("*:$UNSET", {}, "*:"),
    ("$HOSTx", {"HOSTx": "b", "HOST": "a"}, "b"),
    ("${HOST}x", {"HOST": "a"}, "ax"),
    ("10.0.0.1:80", {}, "10.0.0.1:80"),
])
def test_addresses_expand_variables_outside_quotes_as_haproxys_env_expand(
    text: str, env: dict[str, str], expanded: str
) -> None:
    assert expand(text, env) == expanded


def test_unquoted_variables_work_in_bind_and_server_addresses() -> None:
    env = {"PORT": "8085", "HOST": "10.1.2.3", "SPORT": "9000"}
    config = parse("frontend f\n    bind *:$PORT\n    default_backend b\n"
                   "backend b\n    server s $HOST:${SPORT}\n", env)
    assert config.frontends[0].binds[0].port == 8085
    assert config.backends[0].servers[0].address == ("10.1.2.3", 9000)


def test_server_template_declares_numbered_servers_with_the_same_parameters() -> None:
    config = parse(FRONT + "backend b\n    server-template web 3 app.local:80 check weight 5\n"
                   "    server-template api 2-3 10.0.0.9:81\n")
    servers = config.backends[0].servers
    assert [s.name for s in servers] == ["web1", "web2", "web3", "api2", "api3"]
    assert all(s.host == "app.local" and s.check and s.weight == 5 for s in servers[:3])
    assert servers[4].address == ("10.0.0.9", 81)


@pytest.mark.parametrize(("line", "message"), [
    ("server-template web 0 a:80", "Wrong server-template number or range arg '0'"),
    ("server-template web 3-1 a:80", "Wrong server-template number or range arg '3-1'"),
    ("server-template web x a:80", "Wrong server-template number or range arg 'x'"),
    ("server-template s 2 _http._tcp.svc.consul resolvers default",
     "is a DNS SRV record"),
    ("server s1 a:80 resolvers nowhere", "unable to find required resolvers 'nowhere'"),
    ("server s1 a:80 resolve-prefer ipv5", "'resolve-prefer' expects either ipv4 or ipv6"),
    ("server s1 a:80 init-addr last,dns", "'init-addr' : unknown init-addr method 'dns'"),
    ("server s1 a:80 resolve-opts nope", "'resolve-opts' : unknown option 'nope'"),
])
def test_wrong_templates_and_resolution_parameters_are_refused(line: str, message: str) -> None:
    found = errors(FRONT + f"backend b\n    {line}\n")
    assert message in found, found


def test_a_template_name_colliding_with_a_server_is_refused() -> None:
    found = errors(FRONT + "backend b\n    server web2 10.0.0.1:80\n"
                   "    server-template web 3 a:80\n")
    assert "another server named 'web2'" in found


def test_resolvers_sections_and_server_resolution_parameters() -> None:
    config = parse(
        "resolvers dns\n    nameserver ns1 127.0.0.53:53\n    nameserver ns2 10.0.0.2\n"
        "    hold valid 5s\n    hold obsolete 30s\n    resolve_retries 5\n"
        "    timeout resolve 2s\n    timeout retry 3s\n    accepted_payload_size 8192\n"
        + FRONT + "backend b\n    default-server resolvers dns resolve-prefer ipv4\n"
        "    server-template w 2 app.local:80 init-addr last,none resolve-opts allow-dup-ip "
        "resolve-net 10.0.0.0/8\n")
    section = config.resolvers_section("dns")
    assert section is not None
    assert section.nameservers == (("ns1", "127.0.0.53", 53), ("ns2", "10.0.0.2", 53))
    assert (section.hold_for("valid"), section.hold_for("obsolete"), section.hold_for("nx")) \
        == (5.0, 30.0, 30.0)
    assert (section.resolve_retries, section.timeout_resolve, section.timeout_retry,
            section.accepted_payload_size) == (5, 2.0, 3.0, 8192)
    resolution = config.backends[0].servers[0].resolution
    assert resolution is not None
    assert resolution.resolvers == "dns" and resolution.prefer is ResolvePrefer.IPV4
    assert resolution.init_addr == ("last", "none") and resolution.allow_dup_ip
    assert resolution.networks == ("10.0.0.0/8",)


def test_the_default_resolvers_section_exists_without_being_declared() -> None:
    config = parse(FRONT + "backend b\n    server s app.local:80 resolvers default\n")
    default = config.resolvers_section("default")
    assert default is not None and default.parse_resolv_conf
    assert default.hold_for("valid") == 10.0


@pytest.mark.parametrize(("line", "message"), [
    ("hold sometimes 1s", "'hold' expects one of"),
    ("resolve_retries 0", "'resolve_retries' expects <nb>"),
    ("accepted_payload_size 100", "'accepted_payload_size' expects a value between 512"),
    ("timeout forever 1s", "'timeout' expects 'resolve' or 'retry'"),
    ("frobnicate", "unknown keyword 'frobnicate' in 'resolvers' section"),
])
def test_wrong_resolvers_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(f"resolvers dns\n    {line}\n" + HEAD + FRONT + BACK, "t.cfg", env={})
    assert message in str(caught.value.errors[0]) and "t.cfg:2]" in str(caught.value.errors[0])


def test_an_empty_errorfile_is_accepted_and_answers_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.http").write_bytes(b"")
    config = parse(FRONT + "backend b\n    errorfile 503 empty.http\n"
                   "    server s 127.0.0.1:1\n", path=str(tmp_path / "t.cfg"))
    page = config.backends[0].errorfiles[0]
    assert page.status == 503 and page.is_empty


@pytest.mark.parametrize("mode", ["safe", "aggressive", "always"])
def test_http_reuse_modes_that_share_connections_are_accepted(mode: str) -> None:
    parse(FRONT + f"backend b\n    http-reuse {mode}\n    server s 127.0.0.1:1\n")


def test_http_reuse_never_is_refused() -> None:
    assert "'http-reuse never' is not supported" in errors(
        FRONT + "backend b\n    http-reuse never\n    server s 127.0.0.1:1\n")


def test_global_connection_rate_caps_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("global\n    maxconnrate 10\n" + HEAD + FRONT + BACK, "t.cfg", env={})
    assert "'maxconnrate' is not supported by geoproxy" in str(caught.value.errors[0])


def test_option_originalto_and_a_wildcard_server_address() -> None:
    config = parse("frontend f\n    bind :80\n    option originalto except 10.0.0.0/8\n"
                   "    default_backend b\nbackend b\n    option originalto header X-Dst\n"
                   "    server s *:8080\n")
    frontend, backend = config.frontends[0].originalto, config.backends[0].originalto
    assert frontend is not None and frontend.except_network == "10.0.0.0/8"
    assert backend is not None and backend.header == "X-Dst"
    assert config.backends[0].servers[0].maps_address
