"""IPv6 listeners (``runtime/listeners.py`` rule 4): ``v6only``, and an IPv6 address that shares
its port with an IPv4 one, as the corpus's ``bind :25`` with ``bind :::25`` has it (HAProxy 2.6
accepts both forms). Loopback addresses only: ``127.0.0.1`` and ``::1``."""

from __future__ import annotations

import socket
from pathlib import Path

from geoproxy.config import load
from geoproxy.runtime.listeners import bind_all, ipv6_only_binds
from tests.support.ports import free_port

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend f
{binds}
    default_backend b
backend b
    server s1 127.0.0.1:9001
"""


def _config(tmp_path: Path, binds: str) -> Path:
    path = tmp_path / "v6.cfg"
    path.write_text(CONFIG.format(binds=binds))
    return path


def test_v6only_makes_the_listener_take_ipv6_clients_only(tmp_path: Path) -> None:
    config = load(str(_config(tmp_path, "    bind :::8080 v6only\n    bind :::8081")), env={})
    v6only, dual = config.frontends[0].binds
    assert v6only.v6only and not dual.v6only
    assert ipv6_only_binds(config) == {v6only.address}  # :::8081 takes IPv4 clients too


def test_an_ipv6_wildcard_sharing_its_port_with_an_ipv4_bind_leaves_it_ipv4(
    tmp_path: Path,
) -> None:
    """The corpus's pair: HAProxy 2.6 accepts ``bind :25`` with ``bind :::25``."""
    config = load(str(_config(tmp_path, "    bind :25\n    bind :::25\n    bind :::26")),
                  env={})
    v4, v6, alone = config.frontends[0].binds
    assert (v4.host, v6.host) == ("0.0.0.0", "::")
    assert ipv6_only_binds(config) == {v6.address}


def test_both_families_on_one_port_listen_and_each_takes_its_own(tmp_path: Path) -> None:
    port = free_port()
    binds = f"    bind 127.0.0.1:{port}\n    bind [::1]:{port} v6only"
    config = load(str(_config(tmp_path, binds)), env={})
    v4, v6 = bind_all(config)
    try:
        assert (v4.family, v6.family) == (socket.AF_INET, socket.AF_INET6)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        for family, address, listener in ((socket.AF_INET, "127.0.0.1", v4),
                                          (socket.AF_INET6, "::1", v6)):
            with socket.socket(family) as client:
                client.connect((address, port))
                accepted, _ = listener.accept()
                accepted.close()
    finally:
        v4.close()
        v6.close()


def test_v6only_on_an_ipv4_address_changes_nothing_as_in_haproxy(tmp_path: Path) -> None:
    config = load(str(_config(tmp_path, "    bind 127.0.0.1:8080 v6only")), env={})
    assert ipv6_only_binds(config) == set()
