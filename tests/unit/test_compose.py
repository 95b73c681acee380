"""docker-compose.yml agrees with the project: no Docker engine runs in CI, so this test reads
the file and checks what ``docker compose up`` would rely on: the image it builds (the
Dockerfile), the commands (geoproxy's own command line and the demo's, parsed by their own
parsers), the configuration they name (loaded as ``geoproxy check`` would), and the ports.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from geoproxy.config import load
from geoproxy.config.model import Config
from geoproxy.runtime import cli

ROOT = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/opt/geoproxy/"  # the Dockerfile's WORKDIR, where it copies the repository
PROXIES = ("geoproxy-a", "geoproxy-b")
APPS = ("app1", "app2", "app3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _run_args(service: dict[str, Any]) -> Any:
    command = service["command"]
    assert command[0] == "geoproxy", "the console script pyproject.toml installs"
    return cli._parser().parse_args(command[1:])


def _config(service: dict[str, Any]) -> Config:
    path = _run_args(service).config
    assert path.startswith(IMAGE_ROOT)
    return load(str(ROOT / path[len(IMAGE_ROOT) :]))


def test_the_fleet_is_redis_two_geoproxy_hosts_and_three_application_instances(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {"redis", *PROXIES, *APPS}
    assert services["redis"]["image"].startswith("redis:")
    for name in (*PROXIES, *APPS):
        assert services[name]["build"] == "." and services[name]["image"] == "geoproxy:dev"
    for name in PROXIES:
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert set(depends) == {"redis", *APPS}


def test_the_dockerfile_installs_the_package_and_copies_the_configurations() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(rf"^WORKDIR {IMAGE_ROOT.rstrip('/')}$", dockerfile, re.M)
    assert re.search(r"^COPY config \./config$", dockerfile, re.M)
    assert re.search(r"^COPY geoproxy \./geoproxy$", dockerfile, re.M)
    assert re.search(r"^RUN pip install .*\.$", dockerfile, re.M)
    cmd = re.search(r'^CMD \["geoproxy", "run", "-c", "([^"]+)"\]$', dockerfile, re.M)
    assert cmd and (ROOT / cmd.group(1)[len(IMAGE_ROOT) :]).is_file()


def test_each_geoproxy_host_runs_a_valid_command_on_the_shared_redis(
    services: dict[str, dict[str, Any]],
) -> None:
    hostnames = set()
    for name in PROXIES:
        service = services[name]
        args = _run_args(service)
        assert args.command == "run" and args.workers == 2
        redis_url = urlsplit(args.redis)
        assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379)
        assert _config(service).backends, "loads as `geoproxy check` would (raises otherwise)"
        hostnames.add(service["environment"]["GEOPROXY_HOSTNAME"])
    assert len(hostnames) == len(PROXIES), "each host names itself in the workers' ids"


def test_published_ports_are_the_configurations_binds_and_do_not_collide(
    services: dict[str, dict[str, Any]],
) -> None:
    published = []
    for name in PROXIES:
        config = _config(services[name])
        binds = {bind.port for frontend in config.frontends for bind in frontend.binds}
        mapped = [tuple(int(p) for p in entry.split(":")) for entry in services[name]["ports"]]
        assert {inside for _, inside in mapped} == binds
        stats = [f for f in config.frontends if f.stats is not None]
        assert stats and stats[0].stats is not None and stats[0].stats.auths, "a stats page"
        published += [outside for outside, _ in mapped]
    assert len(published) == len(set(published))


def test_application_instances_are_the_configurations_servers_with_their_routes(
    services: dict[str, dict[str, Any]],
) -> None:
    config = _config(services[PROXIES[0]])
    backend = config.backend(config.frontends[-1].default_backend or "")
    assert backend is not None and backend.cookie is not None
    servers = {server.host: server for server in backend.servers}
    assert set(servers) == set(APPS)
    for name in APPS:
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"]
        module = importlib.import_module(command[2])
        args = module.parse_args(command[3:])
        server = servers[name]
        assert (args.host, args.port) == ("0.0.0.0", server.port)
        assert args.route == server.cookie, "the jvmRoute the cookie route mode reads"
