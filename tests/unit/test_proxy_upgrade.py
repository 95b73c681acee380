"""``timeout tunnel`` and its fallback (HAProxy configuration manual, section 4, ``timeout
tunnel``: it supersedes ``timeout client`` and ``timeout server`` once the connection is a
tunnel; without it, each side keeps its own inactivity timeout, so an idle tunnel ends with
the first of the two)."""

from __future__ import annotations

import pytest

from geoproxy.config.model import Timeouts
from geoproxy.proxy.upgrade import tunnel_timeout


@pytest.mark.parametrize(
    ("frontend", "backend", "expected"),
    [
        (Timeouts(client=30), Timeouts(server=20, tunnel=3600), 3600),
        (Timeouts(client=30), Timeouts(server=20, tunnel=0.5), 0.5),
        (Timeouts(client=30), Timeouts(server=20), 20),
        (Timeouts(client=10), Timeouts(server=20), 10),
        (Timeouts(), Timeouts(server=20), 20),
        (Timeouts(client=10), Timeouts(), 10),
        (Timeouts(), Timeouts(), None),
    ],
)
def test_timeout_tunnel_else_the_first_of_client_and_server_to_expire(
    frontend: Timeouts, backend: Timeouts, expected: float | None
) -> None:
    assert tunnel_timeout(frontend, backend) == expected
