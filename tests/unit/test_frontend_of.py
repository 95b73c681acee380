"""Which frontend a listening socket belongs to (``frontend_gate.frontend_of``): the one whose
``bind`` made it, as the gunicorn master and each worker find it to pause a disabled frontend."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.runtime.frontend_gate import frontend_of

CONFIG = parse_text(
    """
frontend exact
    bind 127.0.0.1:8001
    bind 127.0.0.2:8003
    default_backend b
frontend wildcard
    bind *:8002
    default_backend b
listen both
    bind :8004
    bind [::1]:8005
    server s1 127.0.0.1:9
backend b
    server s1 127.0.0.1:9
""",
    "frontends.cfg",
)


@pytest.mark.parametrize(
    ("address", "frontend"),
    [
        (("127.0.0.1", 8001), "exact"),
        (("127.0.0.2", 8003), "exact"),  # a frontend's second bind
        (("0.0.0.0", 8002), "wildcard"),  # what a '*' bind's socket is named
        (("0.0.0.0", 8004), "both"),  # a listen section is a frontend too
        (("::1", 8005, 0, 0), "both"),  # IPv6 names carry flow info and scope id
        (("127.0.0.9", 8001), "exact"),  # no such host: the port decides, as for requests
        (("127.0.0.1", 8999), None),
        ("/run/some.sock", None),
    ],
)
def test_a_listening_socket_belongs_to_the_frontend_that_binds_its_address(
    address: object, frontend: str | None
) -> None:
    assert frontend_of(CONFIG, address) == frontend
