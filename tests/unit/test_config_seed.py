"""The shipped configurations: the story's Tomcat configuration and the demo."""

from __future__ import annotations

from pathlib import Path

from geoproxy.config import load
from geoproxy.config.model import BalanceAlgorithm, CookieMode
from geoproxy.demo.certificate import CERT_ENV, self_signed

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def test_the_seed_configuration_loads_with_exactly_the_expected_warnings() -> None:
    config = load(str(CONFIG_DIR / "seed-tomcat.cfg"), env={})
    warned = [(w.location.line, w.keyword) for w in config.warnings]
    assert warned == [
        (23, "chroot"),
        (26, "user"), (27, "group"), (28, "daemon"),
        (45, "contimeout"), (46, "clitimeout"), (47, "srvtimeout"),
        (62, "cookie"),
    ]


def test_the_seed_warns_that_prefix_with_indirect_strands_users_on_a_restarted_server() -> None:
    config = load(str(CONFIG_DIR / "seed-tomcat.cfg"), env={})
    cookie_warning = str(config.warnings[-1])
    assert "'prefix' with 'indirect'" in cookie_warning
    assert "session expired" in cookie_warning
    assert "geoproxy forwards the server's new cookie anyway" in cookie_warning


def test_the_seed_reads_the_1x_timeouts_and_the_tomcat_backend() -> None:
    config = load(str(CONFIG_DIR / "seed-tomcat.cfg"), env={})
    (frontend,) = config.frontends
    (backend,) = config.backends
    assert frontend.name == "http" and frontend.default_backend == "tomcat"
    assert [(b.host, b.port) for b in frontend.binds] == [("0.0.0.0", 90)]
    assert frontend.timeouts.client == 50.0
    assert (backend.timeouts.connect, backend.timeouts.server) == (5.0, 50.0)
    assert backend.balance.algorithm is BalanceAlgorithm.LEASTCONN
    assert backend.cookie is not None
    assert (backend.cookie.name, backend.cookie.mode) == ("JSESSIONID", CookieMode.PREFIX)
    assert backend.cookie.indirect and backend.cookie.nocache
    assert [(s.name, s.cookie, s.check, s.backup) for s in backend.servers] == [
        ("srv1", "srv1", True, False),
        ("srv2", "srv2", True, False),
        ("srv3", "srv3", True, True),
    ]


def test_the_seed_error_pages_are_read_relative_to_the_configuration() -> None:
    config = load(str(CONFIG_DIR / "seed-tomcat.cfg"), env={})
    pages = {page.status: page for page in config.frontends[0].errorfiles}
    assert sorted(pages) == [400, 403, 408, 500, 502, 503, 504]
    assert pages[503].path == "errors/503.http"
    assert pages[503].response_status == 503
    assert b"No server is available to handle this request." in pages[503].body
    assert config.backends[0].errorfiles == config.frontends[0].errorfiles


def test_the_demo_configuration_loads_without_any_warning(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path / "demo.pem")
    config = load(str(CONFIG_DIR / "demo.cfg"), env={CERT_ENV: str(certificate)})
    assert config.warnings == ()
    (frontend,) = config.frontends
    (backend,) = config.backends
    assert [(b.host, b.port) for b in frontend.binds] == [("127.0.0.1", 8080),
                                                           ("127.0.0.1", 8443)]
    https = frontend.binds[1].tls
    assert https is not None and https.certificates[0].names == ("localhost", "geoproxy demo")
    assert backend.name == "app" and backend.balance.algorithm is BalanceAlgorithm.ROUNDROBIN
    assert backend.cookie is not None and backend.cookie.mode is CookieMode.INSERT
    assert backend.redispatch and backend.retries == 3 and backend.forwardfor is not None
    assert [(s.port, s.cookie) for s in backend.servers] == [
        (9001, "s1"), (9002, "s2"), (9003, "s3")]
