"""The stats page, its CSV and its Prometheus metrics through real geoproxy processes, real
backends and a real Redis (HAProxy manual: ``stats enable``, ``stats uri``, ``stats auth``,
``stats admin``, ``stats refresh``; management guide 9.1, the CSV format).

A known traffic pattern goes through the proxy, then the figures it must produce are read back
from the CSV and from /metrics, as an operator's scripts would.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

import pytest
import redis

from geoproxy.admin.rows import CSV_COLUMNS
from tests.support.backends import Backend
from tests.support.ports import free_port, free_ports
from tests.support.proxy_process import ProxyProcess
from tests.support.stats_client import Rows, StatsClient

pytestmark = pytest.mark.e2e

CONFIG = """
defaults
    mode http
    timeout connect 200ms
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch

listen stats
    bind 127.0.0.1:{stats}
    stats uri /admin?stats
    stats auth admin:s3cret
    stats admin if TRUE
    stats refresh 5s

frontend web
    bind 127.0.0.1:{web}
    stats uri /lb-stats
    stats admin if {{ src 10.0.0.0/8 }}
    use_backend broken if {{ path_beg /broken }}
    use_backend stuck if {{ path_beg /stuck }}
    default_backend app

backend app
    balance roundrobin
    server s1 {s1}
    server s2 {s2}

backend broken
    balance first
    server bad 127.0.0.1:{closed}
    server good {s2}

backend stuck
    no option redispatch
    retries 1
    server lost 127.0.0.1:{closed}
"""


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def fleet(
    backends: Callable[..., list[Backend]], proxy: Callable[..., ProxyProcess]
) -> tuple[StatsClient, int]:
    s1, s2 = backends(2)
    stats_port, web_port = free_ports(2)
    config = CONFIG.format(stats=stats_port, web=web_port, s1=s1.address, s2=s2.address,
                           closed=free_port())
    proxy(config)
    return StatsClient(stats_port, "/admin?stats", ("admin", "s3cret")), web_port


def _flushed(sessions: int) -> Callable[[Rows], bool]:
    return lambda rows: rows.get(("web", "FRONTEND"), {}).get("stot") == str(sessions)


def test_csv_has_haproxys_columns_and_the_figures_of_a_known_traffic_pattern(
    fleet: tuple[StatsClient, int],
) -> None:
    stats, web = fleet
    for _ in range(10):
        assert get(web, "/bytes/1000")[0] == 200
    for _ in range(3):
        status, body = get(web, "/broken")
        assert (status, body) == (200, b"served by s2")
    assert get(web, "/stuck")[0] == 503
    rows = stats.wait_csv(lambda rows: _flushed(13)(rows) and
                          rows.get(("stuck", "lost"), {}).get("econ") == "2")
    text = stats.request("GET", "/admin?stats;csv").text
    assert text.splitlines()[0] == "# " + ",".join(CSV_COLUMNS) + ","
    assert list(rows) == [
        ("stats", "FRONTEND"), ("stats", "BACKEND"), ("web", "FRONTEND"), ("app", "s1"),
        ("app", "s2"), ("app", "BACKEND"), ("broken", "bad"), ("broken", "good"),
        ("broken", "BACKEND"), ("stuck", "lost"), ("stuck", "BACKEND"),
    ]
    app, s1, s2 = rows[("app", "BACKEND")], rows[("app", "s1")], rows[("app", "s2")]
    assert app["stot"] == "10" and int(s1["stot"]) + int(s2["stot"]) == 10
    assert 10 * 1000 < int(app["bout"]) < 10 * 1400, "bodies plus response heads"
    assert int(app["bin"]) >= 10 * len("GET /bytes/1000 HTTP/1.1\r\n")
    assert (app["status"], app["act"], app["bck"], app["type"]) == ("UP", "2", "0", "1")
    assert (s1["status"], s1["weight"], s1["type"], s1["scur"]) == ("no check", "1", "2", "0")
    assert int(app["rate_max"]) >= 1 and int(app["smax"]) >= 1
    bad, good = rows[("broken", "bad")], rows[("broken", "good")]
    # each /broken request: a refused connection to 'bad', then a redispatch to 'good'
    assert (bad["econ"], bad["wretr"], bad["wredis"]) == ("3", "0", "3")
    lost = rows[("stuck", "lost")]
    # /stuck, without redispatch: the first attempt and one retry on the same server, refused
    assert (lost["econ"], lost["wretr"], lost["wredis"]) == ("2", "1", "0")
    assert good["stot"] == "3" and good["econ"] == "0"
    front = rows[("web", "FRONTEND")]
    assert (front["status"], front["type"]) == ("OPEN", "0")
    backends_out = int(app["bout"]) + int(rows[("broken", "BACKEND")]["bout"])
    assert int(front["bout"]) == backends_out


def test_prometheus_metrics_carry_haproxy_exporter_names_and_the_same_figures(
    fleet: tuple[StatsClient, int],
) -> None:
    stats, web = fleet
    for _ in range(4):
        get(web, "/")
    get(web, "/broken")
    rows = stats.wait_csv(_flushed(5))
    reply = stats.request("GET", "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    metrics = stats.metrics()

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert value("haproxy_backend_sessions_total", proxy="app") == 4
    assert value("haproxy_frontend_sessions_total", proxy="web") == 5
    assert value("haproxy_server_connection_errors_total", proxy="broken", server="bad") == 1
    assert value("haproxy_server_redispatch_warnings_total", proxy="broken", server="bad") == 1
    assert value("haproxy_server_status", proxy="app", server="s1", state="UP") == 1
    assert value("haproxy_server_status", proxy="app", server="s1", state="MAINT") == 0
    assert value("haproxy_backend_bytes_out_total", proxy="app") == int(
        rows[("app", "BACKEND")]["bout"]
    )
    assert stats.request("GET", "/metrics", auth=None).status == 401

    def live_workers() -> float:
        figures = stats.metrics()
        return sum(v for (name, _), v in figures.items() if name == "geoproxy_live_workers")

    # a heartbeat (every 0.5 s, 1.5 s of grace) late on a loaded machine shows as one worker
    # missing for a moment; both hosts' workers are alive, and the figure must say so
    deadline = time.monotonic() + 5
    while live_workers() != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_workers() == 2


def test_anonymous_users_get_haproxys_401_and_a_forged_post_changes_nothing(
    fleet: tuple[StatsClient, int], redis_url: str
) -> None:
    stats, _ = fleet
    reply = stats.request("GET", "/admin?stats", auth=None)
    assert (reply.status, reply.reason) == (401, "Unauthorized")
    assert reply.headers["www-authenticate"] == 'Basic realm="HAProxy Statistics"'
    assert reply.body.startswith(b"<html><body><h1>401 Unauthorized</h1>")
    assert stats.request("GET", "/admin?stats", auth=("admin", "wrong")).status == 401
    forged = stats.post({"b": "app", "s": "s1", "action": "maint"}, auth=None)
    assert forged.status == 401
    cross_site = stats.post({"b": "app", "s": "s1", "action": "maint"},
                            headers={"Origin": "http://evil.example"})
    assert (cross_site.status, cross_site.headers["location"]) == (303, "/admin?stats;st=DENY")
    assert cross_site.reason == "See Other"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hget("gp:{app}:srv:s1", "admin") == "ready"
    client.close()


def test_an_admin_drains_a_server_and_sets_a_weight_from_the_page(
    fleet: tuple[StatsClient, int], redis_url: str
) -> None:
    stats, web = fleet
    page = stats.request("GET", "/admin?stats")
    assert page.status == 200 and page.headers["refresh"] == "5" and page.reason == "OK"
    assert 'name="action"' in page.text and 'value="drain"' in page.text
    assert "refresh" not in stats.request("GET", "/admin?stats;norefresh").headers
    done = stats.post({"b": "app", "s": "s1", "action": "drain"})
    assert (done.status, done.headers["location"]) == (303, "/admin?stats;st=DONE")
    weighted = stats.post({"b": "#3", "s": ["s2", "nosuch"], "action": "weight", "weight": "7"})
    assert weighted.headers["location"] == "/admin?stats;st=PART"
    assert stats.post({"b": "app", "action": "drain"}).headers["location"].endswith("st=NONE")
    unknown = stats.post({"b": "nosuch", "s": "s1", "action": "drain"})
    assert unknown.headers["location"].endswith("st=ERRP")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hget("gp:{app}:srv:s1", "admin") == "drain"
    assert client.hget("gp:{app}:srv:s2", "weight") == "7"
    client.close()
    rows = stats.csv()
    assert rows[("app", "s1")]["status"] == "DRAIN" and rows[("app", "s2")]["weight"] == "7"
    assert "Action processed successfully." in stats.request("GET", "/admin?stats;st=DONE").text
    time.sleep(1.0)  # every worker applies it at its next snapshot refresh (0.5 s)
    served = {get(web, "/")[1] for _ in range(6)}
    assert served == {b"served by s2"}, "a drained server takes no new request"


def test_a_stats_uri_on_a_traffic_frontend_leaves_other_paths_to_the_backend(
    fleet: tuple[StatsClient, int], redis_url: str
) -> None:
    _, web = fleet
    page = StatsClient(web, "/lb-stats")
    assert page.request("GET", "/lb-stats").status == 200, "no 'stats auth': open to read"
    assert 'name="action"' not in page.request("GET", "/lb-stats").text
    denied = page.post({"b": "app", "s": "s1", "action": "maint"})
    assert denied.headers["location"] == "/lb-stats;st=DENY", "admin only from 10.0.0.0/8"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hget("gp:{app}:srv:s1", "admin") == "ready"
    client.close()
    status, body = get(web, "/metrics")
    assert status == 200 and body.startswith(b"served by"), "/metrics belongs to the app here"
