"""Record HAProxy's real cookie behaviour as golden tables for geoproxy's persistence tests.

Runs the installed ``haproxy`` on loopback ports in front of raw-socket backends that answer
with chosen Set-Cookie / Cache-Control headers, sends chosen requests, and writes, for every
exchange, what the backend received (its Cookie headers), what the client received (its
Set-Cookie and Cache-Control headers), which server answered and the cookie letters of the
log's termination state (``%tsc``). The tables land in ``tests/unit/cases/cookies/`` so that the
unit tests need no haproxy.

Usage: python scripts/haproxy_cookie_golden.py [OUTPUT_DIR]

Conventions of the suites below:
- ``bal`` is the first server and the backend balances with ``balance first``: a request that
  persistence does not send anywhere lands on ``bal``, so "answered by bal" means "balanced"
  (no case sends a cookie naming ``bal``).
- a server's ``state`` is up, down (a health check against a closed port), drain or maint
  (set on the runtime API).
- ``{date:-100}`` in a request header stands for HAProxy's date encoding of now - 100 s.
- ``force_persist`` / ``ignore_persist`` on an exchange add the header a ``force-persist`` /
  ``ignore-persist`` rule of the backend matches on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
CASE_HEADER = "X-Case"


def encode_date(seconds: int) -> str:
    value = ((seconds + 3) >> 2) & 0x3FFFFFFF
    return "".join(B64[(value >> shift) & 0x3F] for shift in (24, 18, 12, 6, 0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------
# Raw backends


@dataclass
class Backends:
    """Raw HTTP/1.1 servers: each records what it received per case and answers as told."""

    names: list[str]
    ports: dict[str, int] = field(default_factory=dict)
    answers: dict[str, tuple[int, list[tuple[str, str]]]] = field(default_factory=dict)
    received: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)
    _sockets: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for name in self.names:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            sock.settimeout(0.2)
            self.ports[name] = sock.getsockname()[1]
            self._sockets.append(sock)
            threading.Thread(target=self._accept, args=(name, sock), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()

    def _accept(self, name: str, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(name, conn), daemon=True).start()

    def _serve(self, name: str, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        with conn:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                fields = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
                headers = [(h[0], h[1]) for h in fields if len(h) == 2]
                length = sum(int(v) for k, v in headers if k.lower() == "content-length")
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                case = next((v for k, v in headers if k.lower() == CASE_HEADER.lower()), "")
                self.received[case] = (name, headers)
                status, extra = self.answers.get(case, (200, []))
                out = [f"HTTP/1.1 {status} Whatever", f"X-Server: {name}"]
                out += [f"{k}: {v}" for k, v in extra]
                if status >= 200 and status not in (204, 304):
                    out.append("Content-Length: 0")
                conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))


# ------------------------------------------------------------------------------------------
# HAProxy


def haproxy_config(suite: dict[str, Any], ports: dict[str, int], front: int, sock: str) -> str:
    lines = [
        "global",
        f"  stats socket {sock} level admin",
        "  log stdout format raw local0",
        "defaults",
        "  mode http",
        "  log global",
        "  timeout connect 2s",
        "  timeout client 10s",
        "  timeout server 10s",
        "frontend fe",
        f"  bind 127.0.0.1:{front}",
        f"  http-request capture req.hdr({CASE_HEADER}) len 64",
        '  log-format "%[capture.req.hdr(0)] %tsc %s %ST"',
        "  default_backend be",
        "backend be",
        "  balance first",
        f"  {suite['cookie_line']}",
        "  force-persist if { req.hdr(X-Force) -m found }",
        "  ignore-persist if { req.hdr(X-Ignore) -m found }",
    ]
    if suite.get("persist"):
        lines.append("  option persist")
    if suite.get("dynamic_cookie_key"):
        lines.append(f"  dynamic-cookie-key {suite['dynamic_cookie_key']}")
    closed = free_port()
    for server in suite["servers"]:
        words = [f"  server {server['name']} 127.0.0.1:{ports[server['name']]}"]
        if server.get("cookie"):
            words.append(f"cookie {server['cookie']}")
        if server.get("backup"):
            words.append("backup")
        if server.get("state") == "down":
            words.append(f"check port {closed} inter 100 fall 1 rise 1")
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def runtime_command(sock: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(sock)
        conn.sendall(command.encode() + b"\n")
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out.decode()


def wait_states(sock: str, suite: dict[str, Any]) -> None:
    for server in suite["servers"]:
        if server.get("state") in ("drain", "maint"):
            runtime_command(sock, f"set server be/{server['name']} state {server['state']}")
    want_down = {s["name"] for s in suite["servers"] if s.get("state") == "down"}
    for _ in range(100):
        stat = runtime_command(sock, "show stat")
        down = set()
        for row in stat.splitlines():
            cols = row.split(",")
            if len(cols) > 17 and cols[0] == "be" and cols[17].startswith("DOWN"):
                down.add(cols[1])
        if want_down <= down:
            return
        time.sleep(0.1)
    raise RuntimeError(f"servers never went down: {want_down}")


class LogReader:
    def __init__(self, stream: Any) -> None:
        self.lines: dict[str, str] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode("latin-1").strip()
            parts = line.split(" ")
            if len(parts) >= 4:
                with self._lock:
                    self.lines[parts[0]] = line

    def wait(self, case: str) -> list[str]:
        for _ in range(200):
            with self._lock:
                if case in self.lines:
                    return self.lines[case].split(" ")
            time.sleep(0.01)
        raise RuntimeError(f"no log line for {case}")


# ------------------------------------------------------------------------------------------
# Client


def read_response(conn: socket.socket) -> tuple[int, list[tuple[str, str]]]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response headers")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    length = sum(int(v) for k, v in headers if k.lower() == "content-length")
    while len(body) < length:
        body += conn.recv(65536)
    return status, headers


def expand(value: str, now: int) -> str:
    return re.sub(r"\{date:([+-]\d+)\}", lambda m: encode_date(now + int(m.group(1))), value)


def run_exchange(
    conn: socket.socket, backends: Backends, logs: LogReader, case_id: str, ex: dict[str, Any]
) -> dict[str, Any]:
    for _ in range(10):
        now = int(time.time())
        if time.time() - now < 0.7:
            break
        time.sleep(0.35)
    headers = [(k, expand(v, now)) for k, v in ex.get("request_headers", [])]
    ex["request_headers"] = headers
    extra = [(CASE_HEADER, case_id)]
    if ex.get("force_persist"):
        extra.append(("X-Force", "1"))
    if ex.get("ignore_persist"):
        extra.append(("X-Ignore", "1"))
    response = ex.get("response", {"status": 200, "headers": []})
    backends.answers[case_id] = (response["status"], [tuple(h) for h in response["headers"]])
    method = ex.get("method", "GET")
    body = "Content-Length: 0\r\n" if method in ("POST", "PUT") else ""
    lines = [f"{method} {ex.get('target', '/')} HTTP/1.1", "Host: golden.test"]
    lines += [f"{k}: {v}" for k, v in headers + extra]
    conn.sendall(("\r\n".join(lines) + "\r\n" + body + "\r\n").encode("latin-1"))
    status, client_headers = read_response(conn)
    if int(time.time()) != now:
        raise RuntimeError("the clock crossed a second during an exchange; run again")
    log = logs.wait(case_id)
    got = backends.received.get(case_id)
    return {
        "now": now,
        "status": status,
        "answered_by": got[0] if got else None,
        "upstream_cookie": [v for k, v in got[1] if k.lower() == "cookie"] if got else None,
        "client_headers": [
            [k, v] for k, v in client_headers if k.lower() in ("set-cookie", "cache-control")
        ],
        "log": log[1],
    }


def run_suite(suite: dict[str, Any], workdir: Path) -> dict[str, Any]:
    backends = Backends([s["name"] for s in suite["servers"]])
    backends.start()
    front = free_port()
    sock = str(workdir / f"{suite['name']}.sock")
    cfg = workdir / f"{suite['name']}.cfg"
    cfg.write_text(haproxy_config(suite, backends.ports, front, sock))
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        for _ in range(100):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(sock):
            raise RuntimeError(f"haproxy did not start: {proc.communicate(timeout=5)[0]!r}")
        wait_states(sock, suite)
        logs = LogReader(proc.stdout)
        for index, case in enumerate(suite["cases"]):
            with socket.create_connection(("127.0.0.1", front), timeout=10) as conn:
                for step, ex in enumerate(case["exchanges"]):
                    case_id = f"{suite['name']}-{index}-{step}"
                    ex["result"] = run_exchange(conn, backends, logs, case_id, ex)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        backends.stop()
    for server in suite["servers"]:
        server["address"] = f"127.0.0.1:{backends.ports[server['name']]}"
    return suite


# ------------------------------------------------------------------------------------------
# The suites


def ex(cookie: str | list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """One exchange; ``set_cookie`` / ``response_headers`` / ``status`` shape the answer."""
    headers: list[tuple[str, str]] = []
    cookies = [cookie] if isinstance(cookie, str) else (cookie or [])
    headers += [("Cookie", c) for c in cookies]
    headers += [tuple(h) for h in kwargs.pop("request_headers", [])]
    answer: list[tuple[str, str]] = [("Set-Cookie", v) for v in kwargs.pop("set_cookie", [])]
    answer += [tuple(h) for h in kwargs.pop("response_headers", [])]
    differs = kwargs.pop("differs", None)
    out = {
        "method": kwargs.pop("method", "GET"),
        "target": kwargs.pop("target", "/"),
        "request_headers": headers,
        "force_persist": kwargs.pop("force_persist", False),
        "ignore_persist": kwargs.pop("ignore_persist", False),
        "response": {"status": kwargs.pop("status", 200), "headers": answer},
    }
    if differs:
        out["geoproxy_differs"] = differs
    assert not kwargs, kwargs
    return out


def case(name: str, *exchanges: dict[str, Any]) -> dict[str, Any]:
    """A case: exchanges sent in order on one keep-alive connection. An exchange's
    ``geoproxy_differs`` states a deliberate difference: why, and what geoproxy does."""
    return {"name": name, "exchanges": list(exchanges)}


SERVERS = [
    {"name": "bal", "cookie": "bal"},
    {"name": "s1", "cookie": "s1"},
    {"name": "s2", "cookie": "s2", "state": "down"},
    {"name": "s3", "cookie": "s3", "state": "drain"},
    {"name": "s4", "cookie": "s4", "state": "maint"},
    {"name": "twin", "cookie": "s1"},
    {"name": "nocookie"},
    {"name": "b1", "cookie": "b1", "backup": True},
]


NO_ID_SERVERS = [{"name": "bal"}, {"name": "s1", "cookie": "s1"}]


def NO_ID_CASES(n: str) -> list[dict[str, Any]]:  # noqa: N802
    """The balanced server has no id: HAProxy answers with a removal, or leaves cookies be."""
    return [
        case("no cookie", ex()),
        case("valid cookie", ex(f"{n}=s1")),
        case("unknown cookie", ex(f"{n}=zz")),
        case("server sets the cookie", ex(f"{n}=zz", set_cookie=[f"{n}=app; Path=/"])),
        case("prefixed cookie", ex(f"{n}=zz~app", set_cookie=[f"{n}=app2"])),
    ]


def request_cases(name: str) -> list[dict[str, Any]]:
    """Request-side cases every insert/rewrite suite runs: routing and the Cookie header."""
    n = name
    return [
        case("no cookie", ex()),
        case("valid cookie", ex(f"{n}=s1")),
        case("cookie for a down server", ex(f"{n}=s2")),
        case("cookie for a draining server", ex(f"{n}=s3")),
        case("cookie for a server in maintenance", ex(f"{n}=s4")),
        case("cookie for a backup server", ex(f"{n}=b1")),
        case("unknown server id", ex(f"{n}=zz")),
        case("empty server id", ex(f"{n}=")),
        case("other cookies kept in order", ex(f"a=1; {n}=s1; b=2")),
        case("persistence cookie first", ex(f"{n}=s1; a=1")),
        case("persistence cookie last", ex(f"a=1; {n}=s1")),
        case("persistence cookie last with space", ex(f"a=1 ; {n}=s1")),
        case("no spaces", ex(f"a=1;{n}=s1;b=2")),
        case("spaces around equal signs", ex(f"a = 1 ;  {n} = s1 ; b= 2")),
        case("tab around equal sign", ex(f"a\t=1; {n}=s1")),
        case("dollar attributes", ex(f"$Version=1; {n}=s1; $Path=/; a=1")),
        case("dollar attributes only", ex(f"$Version=1; {n}=s1; $Path=/")),
        case("cookie without equal sign", ex(f"flag; {n}=s1; other")),
        case("persistence cookie then bare word", ex(f"{n}=s1; flag")),
        case("comma separated cookies", ex(f"a=1, {n}=s1, b=2")),
        case("quoted value", ex(f'a="x;y"; {n}=s1')),
        case("two persistence cookies, first valid", ex(f"{n}=s1; {n}=b1")),
        case("two persistence cookies, first unknown", ex(f"{n}=zz; {n}=s1")),
        case("two persistence cookies, first down", ex(f"{n}=s2; {n}=s1")),
        case("two persistence cookies, second unknown", ex(f"{n}=s1; {n}=zz")),
        case("two persistence cookies around another", ex(f"{n}=zz; a=1; {n}=s1; b=2")),
        case("two Cookie headers", ex(["a=1", f"{n}=s1"])),
        case("two Cookie headers, persistence first", ex([f"{n}=s1", "b=2"])),
        case("three Cookie headers", ex(["a=1", f"{n}=s1", "b=2"])),
        case("name is a prefix of another cookie", ex(f"{n}X=s1; {n}=b1")),
        case("server id shared by two servers", ex(f"{n}=s1")),
        case("date suffix on a plain cookie", ex(f"{n}=s1|{{date:-10}}")),
        case("ignore-persist", ex(f"{n}=s1", ignore_persist=True)),
        case("force-persist to a down server", ex(f"{n}=s2", force_persist=True)),
        case("force-persist to a server in maintenance", ex(f"{n}=s4", force_persist=True)),
        case("keep-alive: two requests, different cookies", ex(f"{n}=s1"), ex(f"{n}=b1")),
    ]


MAX_AGE = ("Cache-Control", "max-age=60")


def response_cases(name: str) -> list[dict[str, Any]]:
    """Response-side cases: the server's Set-Cookie, caching."""
    n = name
    return [
        case("server sets the persistence cookie, balanced", ex(set_cookie=[f"{n}=app; Path=/"])),
        case("server sets the persistence cookie, direct",
             ex(f"{n}=s1", set_cookie=[f"{n}=app; Path=/"])),
        case("server sets another cookie", ex(set_cookie=["other=1; Path=/"])),
        case("server sets several cookies",
             ex(set_cookie=["a=1", f"{n}=app; Path=/; HttpOnly", "b=2"])),
        case("server cookie with spaces", ex(set_cookie=[f" {n} = app ; Path=/", "c = 3"])),
        case("server cookie with comma in value", ex(set_cookie=[f"{n}=a,b; Path=/"])),
        case("server cookie with expires", ex(
            set_cookie=[f"{n}=app; Expires=Thu, 01-Jan-2037 00:00:00 GMT; Path=/"])),
        case("cacheable: max-age", ex(response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: plain 200", ex()),
        case("cacheable: etag", ex(response_headers=[("ETag", '"x"')])),
        case("cacheable: last-modified",
             ex(response_headers=[("Last-Modified", "Thu, 01 Jan 2015 00:00:00 GMT")])),
        case("cacheable: expires",
             ex(response_headers=[("Expires", "Thu, 01 Jan 2037 00:00:00 GMT")])),
        case("cacheable: private",
             ex(response_headers=[("Cache-Control", "private"), ("ETag", '"x"')])),
        case("cacheable: no-cache",
             ex(response_headers=[("Cache-Control", "no-cache"), ("ETag", '"x"')])),
        case("cacheable: max-age=0", ex(response_headers=[("Cache-Control", "max-age=0")])),
        case("cacheable: public, max-age=0",
             ex(response_headers=[("Cache-Control", "public, max-age=0")])),
        case("cacheable: max-age=0, public",
             ex(response_headers=[("Cache-Control", "max-age=0, public")])),
        case("cacheable: no-cache=set-cookie",
             ex(response_headers=[("Cache-Control", 'no-cache="set-cookie", max-age=60')])),
        case("cacheable: pragma no-cache",
             ex(response_headers=[("Pragma", "no-cache"), ("Cache-Control", "max-age=60")])),
        case("cacheable: POST", ex(method="POST",
                                   response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: POST public", ex(method="POST",
                                          response_headers=[("Cache-Control", "public")])),
        case("cacheable: HEAD", ex(method="HEAD",
                                   response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: authorization", ex(request_headers=[("Authorization", "Basic eDp5")],
                                            response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: request no-store", ex(request_headers=[("Cache-Control", "no-store")],
                                               response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: request no-cache", ex(request_headers=[("Cache-Control", "no-cache")],
                                               response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: 302", ex(status=302, response_headers=[("Cache-Control", "max-age=60"),
                                                                 ("Location", "/x")])),
        case("cacheable: 404", ex(status=404, response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: 500", ex(status=500, response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: 204", ex(status=204, response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: 304", ex(status=304, response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: direct", ex(f"{n}=s1", response_headers=[MAX_AGE])),
        case("cacheable: POST public max-age", ex(
            method="POST", response_headers=[("Cache-Control", "public, max-age=60")])),
        case("cacheable: private then public",
             ex(response_headers=[("Cache-Control", "private, public, max-age=60")])),
        case("cacheable: public alone", ex(response_headers=[("Cache-Control", "public")])),
        case("cacheable: upper case", ex(response_headers=[("Cache-Control", "MAX-AGE=60")])),
        case("cacheable: s-maxage=0", ex(response_headers=[("Cache-Control", "s-maxage=0"),
                                                            ("ETag", '"x"')])),
        case("cacheable: no-store",
             ex(response_headers=[("Cache-Control", "no-store, max-age=9")])),
        case("cacheable: two headers", ex(response_headers=[("Cache-Control", "max-age=60"),
                                                            ("Cache-Control", "private")])),
        case("cacheable: pragma alone", ex(response_headers=[("Pragma", "no-cache"),
                                                             ("ETag", '"x"')])),
        case("cacheable: pragma other", ex(response_headers=[("Pragma", "no-cache, x"),
                                                             ("ETag", '"x"')])),
        case("cacheable: OPTIONS", ex(method="OPTIONS",
                                      response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable: PUT", ex(method="PUT", response_headers=[MAX_AGE])),
        *[case(f"cacheable: {code}", ex(status=code, response_headers=[
            ("Cache-Control", "max-age=60")])) for code in (203, 206, 300, 301, 405, 410, 414,
                                                            501, 201, 307)],
    ]


def cookie_suite(name: str, line: str, policy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    cookie = policy["name"]
    cases = extra.pop("cases", None)
    if cases is None:
        cases = request_cases(cookie) + response_cases(cookie)
    suite = {
        "name": name,
        "cookie_line": line,
        "policy": policy,
        "persist": extra.pop("persist", False),
        "dynamic_cookie_key": extra.pop("dynamic_cookie_key", None),
        "servers": json.loads(json.dumps(extra.pop("servers", SERVERS))),
        "cases": cases,
    }
    assert not extra, extra
    return suite


def policy(name: str, mode: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "mode": mode, **options}


MAINT_DIFFERENCE = (
    "HAProxy 2.6 sends a request whose cookie names a server in MAINT there under 'option "
    "persist'; geoproxy keeps an operator's maintenance and balances it (only force-persist "
    "reaches a server in MAINT), as its specification says."
)


def persist_cases(n: str) -> list[dict[str, Any]]:
    cases = request_cases(n)[:8]
    for item in cases:
        if item["name"] == "cookie for a server in maintenance":
            item["exchanges"][0]["geoproxy_differs"] = {
                "why": MAINT_DIFFERENCE, "answered_by": "bal", "request_log": "D",
                "client_headers": [["set-cookie", f"{n}=bal; path=/"]], "response_log": "I",
            }
    return cases


def date_cases(n: str) -> list[dict[str, Any]]:
    return [
        case("no cookie", ex()),
        case("cookie without dates", ex(f"{n}=s1")),
        case("fresh dates", ex(f"{n}=s1|{{date:-10}}|{{date:-100}}")),
        case("last date in this 4-second slot", ex(f"{n}=s1|{{date:+0}}|{{date:-100}}")),
        case("last date ahead", ex(f"{n}=s1|{{date:+8}}|{{date:-100}}")),
        case("idle too long", ex(f"{n}=s1|{{date:-120}}|{{date:-200}}")),
        case("too old", ex(f"{n}=s1|{{date:-10}}|{{date:-7200}}")),
        case("both too old", ex(f"{n}=s1|{{date:-7200}}|{{date:-7200}}")),
        case("last date more than a day ahead", ex(f"{n}=s1|{{date:+90000}}|{{date:-100}}")),
        case("first date more than a day ahead", ex(f"{n}=s1|{{date:-10}}|{{date:+90000}}")),
        case("only a last date", ex(f"{n}=s1|{{date:-10}}")),
        case("only a last date, idle", ex(f"{n}=s1|{{date:-120}}")),
        case("bad date characters", ex(f"{n}=s1|*****|{{date:-100}}")),
        case("short date", ex(f"{n}=s1|AB")),
        case("empty dates", ex(f"{n}=s1||")),
        case("dates on an unknown server", ex(f"{n}=zz|{{date:-10}}|{{date:-100}}")),
        case("idle cookie, then a valid one", ex(f"{n}=s1|{{date:-120}}; {n}=b1|{{date:-10}}")),
        case("valid cookie, then an idle one", ex(f"{n}=s1|{{date:-10}}; {n}=b1|{{date:-120}}")),
        case("dated cookie, then an undated one", ex(f"{n}=zz|{{date:-120}}; {n}=s1")),
        case("dates with a down server", ex(f"{n}=s2|{{date:-10}}|{{date:-100}}")),
        case("dates, server sets the cookie", ex(f"{n}=s1|{{date:-10}}|{{date:-100}}",
                                                 set_cookie=[f"{n}=x"])),
        case("dates, POST", ex(f"{n}=s1|{{date:-10}}|{{date:-100}}", method="POST")),
    ]


STORY_DIFFERENCE = (
    "The deliberate difference (the Session Expired story): HAProxy 2.6 with 'prefix indirect' "
    "drops the server's new session cookie when the client arrived with a valid prefixed "
    "cookie, so the client keeps the dead session forever. geoproxy forwards it prefixed "
    "because its value differs from the one the client sent."
)


def prefix_cases(n: str, indirect: bool) -> list[dict[str, Any]]:
    new = [f"{n}=NEW; Path=/app"]

    def differs(*client: str) -> dict[str, Any] | None:
        if not indirect:
            return None
        headers = [
            ["cache-control", value.partition(": ")[2]] if value.startswith("Cache-Control: ")
            else ["set-cookie", value] for value in client
        ]
        return {"why": STORY_DIFFERENCE, "client_headers": headers, "response_log": "R"}

    prefixed = f"{n}=s1~NEW; Path=/app"
    deleted = f"{n}=; Expires=Thu, 01-Jan-1970 00:00:01 GMT"
    return [
        case("no cookie, server opens a session", ex(set_cookie=new)),
        case("valid prefixed cookie", ex(f"{n}=s1~OLD")),
        case("valid prefixed cookie, server opens a new session (the story)",
             ex(f"{n}=s1~OLD", set_cookie=new, differs=differs(prefixed))),
        case("valid prefixed cookie, server repeats the same session",
             ex(f"{n}=s1~OLD", set_cookie=[f"{n}=OLD; Path=/app"])),
        case("valid prefixed cookie, server deletes the session",
             ex(f"{n}=s1~OLD", set_cookie=[deleted],
                differs=differs(f"{n}=s1~; Expires=Thu, 01-Jan-1970 00:00:01 GMT"))),
        case("prefixed cookie for a down server", ex(f"{n}=s2~OLD", set_cookie=new)),
        case("prefixed cookie for an unknown server", ex(f"{n}=zz~OLD", set_cookie=new)),
        case("cookie without a prefix", ex(f"{n}=OLD", set_cookie=new)),
        case("empty server id", ex(f"{n}=~OLD")),
        case("several tildes", ex(f"{n}=s1~a~b")),
        case("other cookies kept in order", ex(f"a=1; {n}=s1~OLD; b=2")),
        case("spaces around equal sign", ex(f"a = 1; {n} = s1~OLD")),
        case("two prefixed cookies", ex(f"{n}=s1~A; {n}=b1~B")),
        case("two prefixed cookies, first unknown", ex(f"{n}=zz~A; {n}=s1~B")),
        case("two prefixed cookies, server repeats the second",
             ex(f"{n}=s1~A; {n}=b1~B", set_cookie=[f"{n}=B"])),
        case("dollar attributes", ex(f"$Version=1; {n}=s1~OLD; $Path=/app")),
        case("keep-alive: every request is rewritten",
             ex(f"{n}=s1~ONE"), ex(f"{n}=s1~TWO", set_cookie=new, differs=differs(prefixed)),
             ex(f"{n}=b1~THREE")),
        case("other Set-Cookie untouched",
             ex(f"{n}=s1~OLD", set_cookie=["other=1", *new],
                differs=differs("other=1", prefixed))),
        case("ignore-persist", ex(f"{n}=s1~OLD", set_cookie=new, ignore_persist=True)),
        case("cacheable response", ex(f"{n}=s1~OLD",
                                      response_headers=[("Cache-Control", "max-age=60")])),
        case("cacheable response, new session", ex(
            f"{n}=s1~OLD", set_cookie=new, response_headers=[("Cache-Control", "max-age=60")],
            differs=differs(prefixed, "Cache-Control: max-age=60"))),
    ]


def suites() -> list[dict[str, Any]]:
    n = "SRV"
    j = "JSESSIONID"
    return [
        cookie_suite("insert", f"cookie {n} insert", policy(n, "insert")),
        cookie_suite("insert_indirect_nocache", f"cookie {n} insert indirect nocache",
                     policy(n, "insert", indirect=True, nocache=True)),
        cookie_suite("insert_indirect_preserve", f"cookie {n} insert indirect preserve",
                     policy(n, "insert", indirect=True, preserve=True),
                     cases=request_cases(n)[:3] + response_cases(n)[:4]),
        cookie_suite("insert_postonly", f"cookie {n} insert postonly nocache",
                     policy(n, "insert", postonly=True, nocache=True),
                     cases=[case("GET", ex()), case("POST", ex(method="POST")),
                            case("POST direct", ex(f"{n}=s1", method="POST")),
                            case("post lower-case", ex(method="post"))]),
        cookie_suite(
            "insert_attributes",
            f'cookie {n} insert httponly secure domain .a.example domain .b.example '
            'attr "SameSite=Lax" attr Priority=High',
            policy(n, "insert", httponly=True, secure=True, domains=[".a.example", ".b.example"],
                   attrs=["SameSite=Lax", "Priority=High"]),
            cases=[case("no cookie", ex()), case("valid cookie", ex(f"{n}=s1")),
                   case("server without id", ex(f"{n}=zz"))]),
        cookie_suite("insert_maxidle_maxlife",
                     f"cookie {n} insert indirect maxidle 60 maxlife 3600",
                     policy(n, "insert", indirect=True, maxidle=60, maxlife=3600),
                     cases=date_cases(n)),
        cookie_suite("insert_maxidle", f"cookie {n} insert maxidle 60",
                     policy(n, "insert", maxidle=60), cases=date_cases(n)),
        cookie_suite("insert_maxlife", f"cookie {n} insert nocache maxlife 3600",
                     policy(n, "insert", nocache=True, maxlife=3600), cases=date_cases(n)),
        cookie_suite("insert_persist", f"cookie {n} insert indirect", policy(n, "insert",
                     indirect=True), persist=True, cases=persist_cases(n)),
        cookie_suite("rewrite", f"cookie {n} rewrite", policy(n, "rewrite")),
        # 'rewrite' and 'indirect' are incompatible in HAProxy's configuration
        cookie_suite("rewrite_nocache", f"cookie {n} rewrite nocache",
                     policy(n, "rewrite", nocache=True),
                     cases=request_cases(n)[:10] + response_cases(n)),
        # no mode named: HAProxy's passive mode (routes by the cookie, rewrites nothing)
        cookie_suite("default_mode", f"cookie {n}", policy(n, "passive"),
                     cases=request_cases(n)[:3] + response_cases(n)[:2]),
        cookie_suite("prefix", f"cookie {j} prefix", policy(j, "prefix"),
                     cases=prefix_cases(j, indirect=False)),
        cookie_suite("prefix_indirect_nocache", f"cookie {j} prefix indirect nocache",
                     policy(j, "prefix", indirect=True, nocache=True),
                     cases=prefix_cases(j, indirect=True)),
        cookie_suite("insert_no_id", f"cookie {n} insert indirect nocache",
                     policy(n, "insert", indirect=True, nocache=True), servers=NO_ID_SERVERS,
                     cases=NO_ID_CASES(n)),
        cookie_suite("rewrite_no_id", f"cookie {n} rewrite", policy(n, "rewrite"),
                     servers=NO_ID_SERVERS, cases=NO_ID_CASES(n)),
        cookie_suite("prefix_no_id", f"cookie {j} prefix", policy(j, "prefix"),
                     servers=NO_ID_SERVERS, cases=NO_ID_CASES(j)),
        cookie_suite("dynamic", f"cookie {n} insert dynamic",
                     policy(n, "insert", dynamic=True), dynamic_cookie_key="s3cr3t",
                     servers=[{"name": "bal"}, {"name": "d1"}, {"name": "fixed", "cookie": "f"}],
                     cases=[case("no cookie", ex()), case("fixed id", ex(f"{n}=f"))]),
    ]


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/unit/cases/cookies")
    out_dir.mkdir(parents=True, exist_ok=True)
    version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=True)
    workdir = Path(tempfile.mkdtemp(prefix="golden-"))
    try:
        for suite in suites():
            only = os.environ.get("ONLY")
            if only and suite["name"] != only:
                continue
            result = run_suite(suite, workdir)
            result["recorded_with"] = version.stdout.splitlines()[0]
            path = out_dir / f"{suite['name']}.json"
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(f"{path}: {len(result['cases'])} cases")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
