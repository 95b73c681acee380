"""unique-id-format: parsed at load time, rendered per request as HAProxy prints it."""

from __future__ import annotations

import os

import pytest

from geoproxy.config.unique_id_format import FormatError, parse_format
from geoproxy.proxy.unique_id import UNIQUE_ID_KEY, UniqueIdFormat

ENVIRON = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "35588", "SERVER_NAME": "10.0.0.2",
           "SERVER_PORT": "19201", "geoproxy.accepted": 1795000000.25}


def render(text: str, environ: dict[str, object] | None = None) -> str:
    return UniqueIdFormat(text).render(dict(environ or ENVIRON), "front", "back")


def test_haproxys_common_format_prints_hexadecimal_fields() -> None:
    value = render("%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid")
    client, rest = value.split(":", 1)
    assert client == "7F000001"
    assert rest.startswith("8B04_0A000002:4B01_6AFD86C0_")
    assert value.endswith(f":{os.getpid():04X}")


def test_decimal_fields_separators_and_literals() -> None:
    assert render("%ci:%cp %f/%b  %ms%%") == "127.0.0.1:35588 front/back 250%"
    assert render(" %{+X}ci x") == "7F000001 x"


def test_ipv6_addresses_print_as_sixteen_hex_bytes() -> None:
    value = render("%{+X}ci", {**ENVIRON, "REMOTE_ADDR": "::1"})
    assert value == "0" * 31 + "1"


def test_the_id_is_made_once_per_request_and_kept_in_the_environ() -> None:
    environ: dict[str, object] = dict(ENVIRON)
    first = UniqueIdFormat("%[uuid]").render(environ, "f")
    assert len(first) == 36 and environ[UNIQUE_ID_KEY] == first
    assert UniqueIdFormat("%[uuid]").render(environ, "f") == first


def test_the_request_counter_counts() -> None:
    one, two = int(render("%rt")), int(render("%rt"))
    assert two == one + 1


@pytest.mark.parametrize("text", ["%{+Q}ci", "%[src]", "%ID", "%{", "%[uuid"])
def test_what_geoproxy_cannot_evaluate_is_refused(text: str) -> None:
    with pytest.raises(FormatError):
        parse_format(text)
