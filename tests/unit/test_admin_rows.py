"""The stats page's pure parts: rows, statuses and colours as HAProxy shows them, the CSV, the
HTML (escaping, the admin form), Prometheus names, and admin actions against a recording
control."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from geoproxy.admin import actions
from geoproxy.admin.csv import render_csv
from geoproxy.admin.html import Page, duration, render_html
from geoproxy.admin.prometheus import render_metrics
from geoproxy.admin.rows import CSV_COLUMNS, proxies, server_css, server_status, with_frontends
from geoproxy.balance.view import AdminState
from geoproxy.state.store import BackendReport, FleetReport, FrontendReport, ServerReport

BASE = ServerReport(
    name="s1", address="10.0.0.1:80", admin="ready", oper="up", weight=1, cfg_weight=1,
    inflight=0, queued=0, total=0, backup=False, check="", check_ms=None, streak="", errors=0,
    since_change=None, checked=True,
)


def server(**changes: object) -> ServerReport:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def report(*servers: ServerReport, name: str = "app") -> FleetReport:
    backend = BackendReport(name, tuple(servers), live_workers=2, max_inflight=4)
    return FleetReport((backend,), (FrontendReport("web", sessions=9, bytes_in=10,
                                                   bytes_out=20),), ("h1:1", "h2:1"), 0)


def test_server_statuses_are_haproxys_words() -> None:
    cases = [
        (server(), "UP"),
        (server(checked=False), "no check"),
        (server(oper="down"), "DOWN"),
        (server(admin="maint", oper="down"), "MAINT"),
        (server(admin="drain"), "DRAIN"),
        (server(admin="drain", oper="down"), "DOWN"),
        (server(oper="going-down", health=3, rise=2, fall=3), "UP 2/3"),
        (server(oper="going-up", health=1, rise=2, fall=3), "DOWN 1/2"),
    ]
    assert [server_status(s) for s, _ in cases] == [status for _, status in cases]


def test_row_colours_are_haproxys_classes() -> None:
    assert server_css(server(), "UP") == "active_up"
    assert server_css(server(backup=True, oper="going-down"), "UP 2/3") == "backup_going_down"
    assert server_css(server(admin="drain"), "DRAIN") == "active_draining"
    assert server_css(server(admin="maint"), "MAINT") == "maintain"
    assert server_css(server(checked=False), "no check") == "active_no_check"


def test_proxies_list_frontend_servers_backend_in_configuration_order() -> None:
    fleet = with_frontends(report(server(), server(name="s2", backup=True)), ["web", "idle"])
    listed = proxies(fleet, order=("web", "idle", "app"))
    assert [p.name for p in listed] == ["web", "idle", "app"]
    assert [(r.pxname, r.svname) for p in listed for r in p.rows] == [
        ("web", "FRONTEND"), ("idle", "FRONTEND"), ("app", "s1"), ("app", "s2"),
        ("app", "BACKEND"),
    ]
    backend = listed[2].rows[-1]
    assert (backend.act, backend.bck, backend.smax, backend.status) == (1, 1, 4, "UP")
    assert [p.name for p in proxies(fleet, scopes=("app",))] == ["app"]


def test_a_backend_without_a_usable_server_is_down() -> None:
    listed = proxies(report(server(oper="down"), server(name="s2", admin="maint")))
    rows = next(proxy for proxy in listed if proxy.name == "app").rows
    assert rows[-1].status == "DOWN" and rows[-1].weight == 0
    page_only = proxies(report(name="stats"), applets=("stats",))
    assert page_only[0].rows[-1].status == "UP", "the page is the stats listener's server"


def test_a_frontend_is_open_until_an_operator_disables_it_then_paused() -> None:
    fleet = report(server())
    paused = dataclasses.replace(fleet, frontends=(FrontendReport("web", paused=True),))
    statuses = [proxies(f, order=("web",))[0].rows[0] for f in (fleet, paused)]
    assert [(row.svname, row.status) for row in statuses] == [("FRONTEND", "OPEN"),
                                                              ("FRONTEND", "PAUSED")]


def test_csv_cells_follow_the_header_and_empty_cells_stay_empty() -> None:
    text = render_csv(proxies(report(server(total=7, bytes_out=99, check="L7OK a,b"))))
    header, *lines = text.splitlines()
    assert header == "# " + ",".join(CSV_COLUMNS) + ","
    assert all(line.count(",") == len(CSV_COLUMNS) for line in lines)
    cells = dict(zip(CSV_COLUMNS, lines[0].split(","), strict=False))
    assert (cells["svname"], cells["stot"], cells["bout"], cells["slim"]) == ("s1", "7", "99", "")
    assert cells["last_chk"] == "a b", "a comma in free text would shift the columns"


def test_html_escapes_names_from_redis_and_shows_the_form_to_admins_only() -> None:
    hostile = report(server(name='<img src=x onerror="alert(1)">'))
    listed = proxies(hostile)
    page = Page(listed, "/stats", [("h1", 2)], admin=True, refresh=None, version="0.1")
    html = render_html(page)
    assert "<img" not in html and "&lt;img" in html
    assert '<form method="post" action="/stats"' in html and 'name="b" value="app"' in html
    viewer = render_html(dataclasses.replace(page, admin=False))
    assert "<form" not in viewer and "<script" not in html + viewer


def test_durations_read_as_haproxys() -> None:
    assert [duration(s) for s in (5, 65, 3600 + 120, 90000)] == ["5s", "1m05s", "1h02m",
                                                                 "1d1h"]


def test_metrics_use_haproxy_exporter_names_and_one_state_per_server() -> None:
    text = render_metrics(report(server(total=3, err_conn=2), server(name="s2", admin="drain")))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert samples[("haproxy_server_sessions_total", (("proxy", "app"), ("server", "s1")))] == 3
    assert samples[("haproxy_backend_sessions_total", (("proxy", "app"),))] == 3
    assert samples[("haproxy_frontend_sessions_total", (("proxy", "web"),))] == 9
    states = {labels: v for (name, labels), v in samples.items()
              if name == "haproxy_server_status" and ("server", "s2") in labels}
    assert [dict(labels)["state"] for labels, v in states.items() if v == 1] == ["DRAIN"]
    assert samples[("geoproxy_live_workers", (("host", "h1"),))] == 1


class Recorder:
    """A ``FleetControl`` that records what an action asked for."""

    def __init__(self, fleet: FleetReport) -> None:
        self.fleet = fleet
        self.calls: list[tuple[str, str, object]] = []

    def fleet_report(self) -> FleetReport:
        return self.fleet

    def set_admin(self, backend: str, server: str, state: AdminState) -> None:
        self.calls.append((backend, server, state))

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.calls.append((backend, server, weight))


def test_admin_actions_answer_haproxys_codes() -> None:
    fleet = report(server(), server(name="s2", cfg_weight=10))
    control = Recorder(fleet)

    def run(backend: str, servers: tuple[str, ...], action: str, weight: str = "") -> str:
        posted = actions.AdminRequest(backend, servers, action, weight)
        return actions.apply(posted, control, ["web", "app"]).value

    assert run("app", ("s1",), "drain") == "DONE"
    assert run("#2", ("s1", "nope"), "maint") == "PART"
    assert run("app", (), "ready") == "NONE"
    assert run("nope", ("s1",), "ready") == "ERRP"
    assert run("app", ("s1",), "shutdown") == "ERRP"
    assert run("app", ("s2",), "weight", "50%") == "DONE"
    assert run("app", ("s2",), "weight", "300") == "ERRP"
    assert control.calls == [("app", "s1", AdminState.DRAIN), ("app", "s1", AdminState.MAINT),
                             ("app", "s2", 5)]
