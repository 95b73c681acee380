"""Talking to geoproxy's stats page as an operator's tools do: HTTP with basic auth, HAProxy's
CSV parsed by its header line, Prometheus text parsed with prometheus-client's parser."""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

Rows = dict[tuple[str, str], dict[str, str]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    reason: str = ""  # the status line's reason phrase

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass(frozen=True, slots=True)
class StatsClient:
    """The stats page at ``port`` (127.0.0.1), ``uri`` its stats URI, ``auth`` (user, pass)."""

    port: int
    uri: str
    auth: tuple[str, str] | None = None

    def request(
        self,
        method: str,
        target: str,
        form: dict[str, str | list[str]] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None | bool = True,
    ) -> Reply:
        """One request on a new connection; ``auth=True`` uses the client's credentials,
        ``None``/``False`` sends none, a pair sends that pair."""
        sent = dict(headers or {})
        credentials = self.auth if auth is True else (auth or None)
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
            got = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, got, response.read(), response.reason)
        finally:
            connection.close()

    def csv(self) -> Rows:
        reply = self.request("GET", self.uri + ";csv")
        assert reply.status == 200, reply
        return parse_csv(reply.text)

    def post(self, form: dict[str, str | list[str]], **kwargs: object) -> Reply:
        return self.request("POST", self.uri, form=form, **kwargs)  # type: ignore[arg-type]

    def metrics(self, path: str = "/metrics") -> Samples:
        reply = self.request("GET", path)
        assert reply.status == 200, reply
        return parse_metrics(reply.text)

    def wait_csv(self, done: Callable[[Rows], bool], timeout: float = 5.0) -> Rows:
        """The CSV once ``done(rows)`` holds (statistics are flushed within ~10 ms)."""
        deadline = time.monotonic() + timeout
        rows = self.csv()
        while not done(rows) and time.monotonic() < deadline:
            time.sleep(0.05)
            rows = self.csv()
        return rows


def parse_csv(text: str) -> Rows:
    """HAProxy's CSV: ``# name,name,...,`` then rows; keyed by (pxname, svname)."""
    lines = text.splitlines()
    assert lines[0].startswith("# "), lines[0]
    columns = lines[0][2:].rstrip(",").split(",")
    rows: Rows = {}
    for line in lines[1:]:
        cells = line.rstrip(",").split(",")
        cells += [""] * (len(columns) - len(cells))
        row = dict(zip(columns, cells, strict=True))
        rows[(row["pxname"], row["svname"])] = row
    return rows


def parse_metrics(text: str) -> Samples:
    """Every sample: (name, sorted labels) -> value."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
