"""``use_backend`` rules route each request to the backend its ACLs name.

HAProxy configuration manual: section 7 ("Using ACLs and fetching samples": path_beg,
hdr(host), hdr_dom, -i, negation with "!", implicit AND, "or"), "use_backend" (the first rule
whose condition holds wins; "default_backend" otherwise) and section 1.3.1 (503 when no
backend is found).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_error_answers import PAGE_400
from tests.support.http_client import get, request
from tests.support.ports import free_port
from tests.support.raw_client import RawConnection

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout http-request 2s

frontend main
    bind 127.0.0.1:{main_port}
    acl is_api path_beg /api/ /v2/
    acl is_admin_host hdr(host) -i admin.example.com
    acl is_static hdr_dom(host) -i static
    acl is_post method POST
    use_backend admin if is_admin_host
    use_backend api if is_api !is_post
    use_backend writes if is_api is_post
    use_backend static if is_static or {{ path_beg /assets/ }}
    default_backend web

frontend bare
    bind 127.0.0.1:{bare_port}
    use_backend api if {{ path_beg /api/ }}

backend web
    server web {web}

backend api
    server api {api}

backend writes
    server writes {writes}

backend admin
    server admin {admin}

backend static
    server static {static}
"""

NAMES = ["web", "api", "writes", "admin", "static"]


@dataclass
class Scene:
    main: int
    bare: int


@pytest.fixture(scope="module")
def scene(module_stack: Stack) -> Scene:
    servers = module_stack.backends(len(NAMES), names=NAMES)
    main, bare = free_port(), free_port()
    addresses = {server.name: server.address for server in servers}
    module_stack.proxy(CONFIG.format(main_port=main, bare_port=bare, **addresses))
    return Scene(main, bare)


def served_by(port: int, method: str, path: str, host: str = "www.example.com") -> str | None:
    body = b"" if method == "POST" else None
    answer = request(port, method, path, headers={"Host": host}, body=body)
    assert answer.status == 200, answer
    return answer.header("X-Server")


@pytest.mark.parametrize(
    ("method", "path", "host", "backend"),
    [
        ("GET", "/", "www.example.com", "web"),
        ("GET", "/api/users", "www.example.com", "api"),
        ("GET", "/v2/users", "www.example.com", "api"),
        ("GET", "/apiary", "www.example.com", "web"),
        ("POST", "/api/users", "www.example.com", "writes"),
        ("GET", "/api/users", "ADMIN.example.com", "admin"),
        ("GET", "/", "img.static.example.com", "static"),
        ("GET", "/", "staticky.example.com", "web"),
        ("GET", "/assets/logo.png", "www.example.com", "static"),
    ],
)
def test_use_backend_rules_route_by_path_host_and_method(
    scene: Scene, method: str, path: str, host: str, backend: str
) -> None:
    assert served_by(scene.main, method, path, host) == backend


def test_an_absolute_form_uri_routes_by_its_host_which_must_be_its_authority(
    scene: Scene,
) -> None:
    answer = get(scene.main, "http://admin.example.com/", headers={"Host": "admin.example.com"})
    assert answer.header("X-Server") == "admin"
    # haproxy 2.6 refuses a request that names two hosts, rather than route by one of them
    with RawConnection("127.0.0.1", scene.main) as connection:
        connection.send(b"GET http://admin.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        assert connection.read_until_closed() == PAGE_400


def test_a_frontend_without_default_backend_answers_503_when_no_rule_matches(
    scene: Scene,
) -> None:
    assert get(scene.bare, "/api/x").header("X-Server") == "api"
    answer = get(scene.bare, "/other")
    assert answer.status == 503
    assert b"No server is available to handle this request." in answer.body
