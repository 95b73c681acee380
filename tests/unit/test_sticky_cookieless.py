"""BackendPersistence.read shares one decision among requests without a Cookie header (insert,
prefix and rewrite modes): it must be the decision read_request makes for each of them."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.persistence import PersistenceRequest, read_request
from geoproxy.proxy.sticky import BackendPersistence
from geoproxy.state.snapshot import initial_view as _initial_view

CONFIG = """\
defaults
    mode http
frontend fe
    bind 127.0.0.1:8080
    default_backend be
backend be
    cookie SERVERID {mode}
    ignore-persist if {{ path_beg /static }}
    server s1 127.0.0.1:9001 cookie s1
    server s2 127.0.0.1:9002 cookie s2
"""


@pytest.mark.parametrize("mode", ["insert indirect nocache", "prefix", "rewrite"])
@pytest.mark.parametrize("method", ["GET", "POST", "BREW"])
@pytest.mark.parametrize("path", ["/", "/static/a.png"])
def test_a_cookieless_request_gets_the_decision_read_request_makes(
    mode: str, method: str, path: str
) -> None:
    config = parse_text(CONFIG.format(mode=mode), "t.cfg", env={})
    backend = config.backends[0]
    persistence = BackendPersistence(backend, config)
    view = _initial_view(backend)
    environ = {"REQUEST_METHOD": method, "RAW_URI": path, "PATH_INFO": path}
    expected = read_request(
        backend.cookie,
        view.servers,
        PersistenceRequest(
            method=method, cookie=None, target=path, ignore_persist=path.startswith("/static")
        ),
        1000.0,
    )
    for _ in range(2):  # computed, then shared
        assert persistence.read(environ, view, 1000.0) == expected


def test_a_request_with_a_cookie_is_still_read_for_itself() -> None:
    config = parse_text(CONFIG.format(mode="insert indirect"), "t.cfg", env={})
    backend = config.backends[0]
    persistence = BackendPersistence(backend, config)
    view = _initial_view(backend)
    plain = {"REQUEST_METHOD": "GET", "RAW_URI": "/"}
    with_cookie = {**plain, "HTTP_COOKIE": "SERVERID=s2"}
    assert persistence.read(plain, view, 1000.0).server is None
    chosen = persistence.read(with_cookie, view, 1000.0).server
    assert chosen is not None and chosen.name == "s2"
    assert persistence.read(plain, view, 1000.0).server is None
