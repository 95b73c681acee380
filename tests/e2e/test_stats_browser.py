"""The stats page in a real headless Chromium, driven as an operator uses it: a two-host fleet
(two geoproxy processes on one Redis), log in, see every server, put one in DRAIN with the
page's own form, and see the change on the page and in Redis.

The same page is then served over HTTPS (``bind ... ssl crt``, a certificate the test makes),
and the browser logs in and drains a server there too.

The run saves a screenshot in ``artifacts/stats-page.png``; ``docs/stats-page.png`` (the
README's) is written when it is missing or when ``GEOPROXY_UPDATE_DOCS=1``.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.backends import Backend
from tests.support.ports import free_ports
from tests.support.proxy_process import ProxyProcess
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome")
     if (found := shutil.which(name))),
    None,
)
CHROMEDRIVER = shutil.which("chromedriver")

CONFIG = """
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

listen stats
    bind 127.0.0.1:{stats}
    stats uri /
    stats auth admin:s3cret
    stats admin if TRUE

frontend web
    bind 127.0.0.1:{web}
    use_backend api if {{ path_beg /api }}
    default_backend app

backend app
    balance roundrobin
    cookie SERVERID insert indirect nocache
    server s1 {s1} cookie s1
    server s2 {s2} cookie s2
    server s3 {s3} cookie s3 backup

backend api
    balance leastconn
    option httpchk GET /health
    server a1 {s3} check inter 300ms
    server a2 127.0.0.1:{closed} check inter 300ms
"""
CREDENTIALS = "Basic " + base64.b64encode(b"admin:s3cret").decode()


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if CHROMIUM is None:
        tool_missing("no chromium binary on this machine")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --ignore-certificate-errors: the HTTPS case's certificate is the test's own
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--ignore-certificate-errors",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1500,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER) if CHROMEDRIVER else Service()
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _two_hosts(
    backends: Callable[..., list[Backend]], proxy: Callable[..., ProxyProcess]
) -> tuple[int, int, int]:
    """Two geoproxy "hosts" on one Redis; returns (host-a's stats port, host-a's and
    host-b's traffic ports)."""
    s1, s2, s3 = backends(3)
    ports = free_ports(5)
    for host, stats, web in (("host-a", ports[0], ports[1]), ("host-b", ports[2], ports[3])):
        config = CONFIG.format(stats=stats, web=web, s1=s1.address, s2=s2.address,
                               s3=s3.address, closed=ports[4])
        proxy(config, workers=1, env={"GEOPROXY_HOSTNAME": host})
    return ports[0], ports[1], ports[3]


def test_an_operator_logs_in_sees_the_fleet_and_drains_a_server_from_the_page(
    backends: Callable[..., list[Backend]],
    proxy: Callable[..., ProxyProcess],
    redis_url: str,
    browser: object,  # last: it quits first, so its keep-alive connections hold no worker
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    assert isinstance(browser, WebDriver)
    stats_port, web_a, web_b = _two_hosts(backends, proxy)
    for port in (web_a, web_b):
        for _ in range(6):
            assert get(port, "/bytes/2048") == 200
        assert get(port, "/api/items") == 200
    url = f"http://127.0.0.1:{stats_port}/"
    wait = WebDriverWait(browser, 10)

    browser.get(url)  # anonymous: HAProxy's 401, the browser asks for credentials
    assert 'id="app/s1"' not in browser.page_source
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": CREDENTIALS}}
    )
    browser.get(url)
    wait.until(lambda _: "host-b" in browser.find_element(By.ID, "hosts").text)
    assert "host-a (1 workers)" in browser.find_element(By.ID, "hosts").text
    for server in ("s1", "s2", "s3"):
        row = browser.find_element(By.ID, f"app/{server}")
        assert row.get_attribute("class") in ("active_no_check", "backup_no_check")

    def web_total() -> str:
        """The web frontend's total sessions, as the page shows it now."""
        cells = browser.find_element(By.ID, "web/FRONTEND").find_elements(By.TAG_NAME, "td")
        return str(cells[9].text)

    for _ in range(20):  # statistics reach Redis at each worker's next flush (once a second)
        if web_total() == "14":
            break
        time.sleep(0.25)
        browser.refresh()
    assert web_total() == "14", "both hosts' requests, on host-a's page"
    for _ in range(20):  # a2's checks fail: DOWN after 'fall' (3) checks, 300 ms apart
        if browser.find_element(By.ID, "api/a2").get_attribute("class") == "active_down":
            break
        time.sleep(0.25)
        browser.refresh()
        wait.until(lambda _: browser.find_elements(By.ID, "api/a2"))
    assert "L4CON" in browser.find_element(By.ID, "api/a2").text

    browser.find_element(By.CSS_SELECTOR, '#form-app input[name="s"][value="s1"]').click()
    Select(browser.find_element(By.CSS_SELECTOR, '#form-app select[name="action"]')
           ).select_by_value("drain")
    browser.find_element(By.CSS_SELECTOR, '#form-app input[type="submit"]').click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "status")))
    assert "Action processed successfully." in browser.find_element(By.ID, "status").text
    drained = browser.find_element(By.ID, "app/s1")
    assert drained.get_attribute("class") == "active_draining"
    assert "DRAIN" in drained.text
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hget("gp:{app}:srv:s1", "admin") == "drain"
    client.close()

    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "stats-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    docs = ROOT / "docs" / "stats-page.png"
    if not docs.exists() or os.environ.get("GEOPROXY_UPDATE_DOCS") == "1":
        docs.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs)


HTTPS_CONFIG = """
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

listen stats
    bind 127.0.0.1:{stats} ssl crt {pem} alpn h2,http/1.1
    stats uri /
    stats auth admin:s3cret
    stats admin if TRUE
    http-response set-header Strict-Transport-Security "max-age=60" if {{ ssl_fc }}

backend app
    server s1 {s1}
    server s2 {s2}
"""


def test_the_stats_page_over_https_in_the_browser(
    backends: Callable[..., list[Backend]],
    proxy: Callable[..., ProxyProcess],
    tmp_path: Path,
    browser: object,  # last: it quits first, so its keep-alive connections hold no worker
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.support.certs import authority

    assert isinstance(browser, WebDriver)
    s1, s2 = backends(2)
    pem = authority().issue("localhost", ("localhost", "127.0.0.1")).write(tmp_path / "s.pem")
    (stats,) = free_ports(1)
    proxy(HTTPS_CONFIG.format(stats=stats, pem=pem, s1=s1.address, s2=s2.address), workers=1)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": CREDENTIALS}}
    )
    browser.get(f"https://127.0.0.1:{stats}/")
    wait = WebDriverWait(browser, 10)
    wait.until(lambda _: browser.find_elements(By.ID, "app/s2"))
    assert browser.current_url.startswith("https://")
    # the browser chose HTTP/2 in the handshake (ALPN), and the page and its form work over it
    assert browser.execute_script(
        "return performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    browser.find_element(By.CSS_SELECTOR, '#form-app input[name="s"][value="s2"]').click()
    Select(browser.find_element(By.CSS_SELECTOR, '#form-app select[name="action"]')
           ).select_by_value("drain")
    browser.find_element(By.CSS_SELECTOR, '#form-app input[type="submit"]').click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "status")))
    assert "Action processed successfully." in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "app/s2").get_attribute("class") == "active_draining"
