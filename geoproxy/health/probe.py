"""One active health check, as HAProxy runs it: a TCP connect (``check``), an HTTP request
(``option httpchk``) whose answer is judged by ``http-check expect`` (default: 2xx or 3xx), a
``tcp-check`` ruleset (health.tcpcheck), or a command (``option external-check``:
health.external).

Results carry HAProxy's check status codes (L4OK, L4CON, L4TOUT, L7OK, L7STS, L7RSP, L7TOUT,
...) and a description, as its logs and stats page show them.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geoproxy.config.model import HttpCheck, HttpCheckExpectKind
from geoproxy.config.model_tcp import ProxyProtocol, TcpCheck
from geoproxy.health.external import ExternalTarget, run_external
from geoproxy.health.tcpcheck import TcpCheckTarget, run_tcp_check
from geoproxy.tcp.proxyproto import encode_v1, encode_v2

if TYPE_CHECKING:
    from geoproxy.runtime.tls_client import ClientTls

_MAX_ANSWER = 16384
NOLB_CODE = "L7OKC"  # http-check disable-on-404 and a 404: "check conditionally passed"


@dataclass(frozen=True, slots=True)
class CheckResult:
    passed: bool
    code: str  # HAProxy's check status: L4OK, L4CON, L4TOUT, L7OK, L7STS, L7RSP, L7TOUT, PROC*
    description: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class CheckTarget:
    host: str
    port: int
    timeout: float
    connect_timeout: float
    http: HttpCheck | None
    host_header: str | None = None
    tcp_check: TcpCheck | None = None  # option tcp-check, redis-check... (health.tcpcheck)
    send_proxy: ProxyProtocol | None = None  # check-send-proxy: a PROXY header first
    tls: ClientTls | None = None  # check-ssl (or ssl): the check shakes hands first
    external: ExternalTarget | None = None  # option external-check: a command, no connection


def run_check(target: CheckTarget) -> CheckResult:
    """Run one check against ``target``; never raises."""
    started = time.monotonic()

    def done(passed: bool, code: str, description: str) -> CheckResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return CheckResult(passed, code, description, elapsed)

    if target.external is not None:
        outcome = run_external(target.external)
        return done(outcome.passed, outcome.code, outcome.description)
    if target.tcp_check is not None:
        result = run_tcp_check(TcpCheckTarget(
            target.host, target.port, target.timeout, target.connect_timeout,
            target.tcp_check, target.send_proxy, target.tls))
        return done(result.passed, result.code, result.description)
    try:
        sock = socket.create_connection(
            (target.host, target.port), timeout=min(target.connect_timeout, target.timeout)
        )
    except TimeoutError:
        return done(False, "L4TOUT", "Layer4 timeout")
    except OSError as error:
        return done(False, "L4CON", f"Layer4 connection problem: {error.strerror or error}")
    try:
        if target.send_proxy is not None:
            header = encode_v2(None) if target.send_proxy is ProxyProtocol.V2 else encode_v1(None)
            try:
                sock.sendall(header)
            except OSError as error:
                return done(False, "L4CON", f"Layer4 connection problem: {error}")
        if target.tls is not None:
            try:
                sock = target.tls.wrap(sock, min(target.connect_timeout, target.timeout))
            except TimeoutError:
                return done(False, "L6TOUT", "Layer6 timeout")
            except OSError as error:
                return done(False, "L6RSP", f"Layer6 invalid response: {error}")
        if target.http is None:
            if target.tls is not None:
                return done(True, "L6OK", "Layer6 check passed")
            return done(True, "L4OK", "Layer4 check passed")
        remaining = max(target.timeout - (time.monotonic() - started), 0.001)
        sock.settimeout(remaining)
        try:
            answer = _exchange(sock, target)
        except TimeoutError:
            return done(False, "L7TOUT", "Layer7 timeout")
        except OSError as error:
            return done(False, "L7RSP", f"Layer7 invalid response: {error.strerror or error}")
        passed, code, description = judge(answer, target.http)
        return done(passed, code, description)
    finally:
        sock.close()


def _exchange(sock: socket.socket, target: CheckTarget) -> bytes:
    http = target.http
    assert http is not None
    lines = [f"{http.method} {http.uri} {http.version}"]
    if target.host_header and http.version.upper() == "HTTP/1.1":
        lines.append(f"Host: {target.host_header}")
    lines += [f"{name}: {value}" for name, value in http.headers]
    body = http.body.encode("latin-1")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    if http.version.upper() == "HTTP/1.1":
        lines.append("Connection: close")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    answer = b""
    while len(answer) < _MAX_ANSWER:
        data = sock.recv(_MAX_ANSWER - len(answer))
        if not data:
            break
        answer += data
        if http.expect is None and b"\r\n" in answer:
            break  # the status line is all a default check reads
    return answer


_STATUS_LINE = re.compile(rb"^HTTP/\d\.\d (\d{3})(?: ([^\r\n]*))?\r?\n")


def judge(answer: bytes, http: HttpCheck) -> tuple[bool, str, str]:
    """HAProxy's verdict on an HTTP check's answer: (passed, code, description)."""
    match = _STATUS_LINE.match(answer)
    if not match:
        return False, "L7RSP", "Layer7 invalid response"
    status = int(match.group(1))
    reason = (match.group(2) or b"").decode("latin-1")
    if status == 404 and http.disable_on_404:
        # HAProxy's NOLB: the server stays up for its persistent users, takes no new ones
        return True, NOLB_CODE, f"Layer7 check conditionally passed: {status} {reason}".strip()
    expect = http.expect
    if expect is None:
        passed = 200 <= status < 400
        code = "L7OK" if passed else "L7STS"
        return (
            passed,
            code,
            f"Layer7 {'check passed' if passed else 'wrong status'}: {status} {reason}".strip(),
        )
    if expect.kind in (HttpCheckExpectKind.STATUS, HttpCheckExpectKind.RSTATUS):
        text = str(status)
        if expect.kind is HttpCheckExpectKind.STATUS:
            found = _status_matches(status, expect.pattern)
        else:
            found = re.search(expect.pattern, text) is not None
        passed = found != expect.negated
        code = "L7OK" if passed else "L7STS"
        return passed, code, f"HTTP status check returned code <{status}>"
    _, _, body = answer.partition(b"\r\n\r\n")
    text_body = body.decode("latin-1")
    if expect.kind is HttpCheckExpectKind.STRING:
        found = expect.pattern in text_body
    else:
        found = re.search(expect.pattern, text_body) is not None
    passed = found != expect.negated
    return (
        passed,
        "L7OK" if passed else "L7RSP",
        ("HTTP content check matched" if passed else "HTTP content check did not match"),
    )


def _status_matches(status: int, pattern: str) -> bool:
    """``expect status 200``, ``200,302`` or ``200-399`` (HAProxy 2.2+ lists and ranges)."""
    for part in pattern.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            if dash and int(low) <= status <= int(high):
                return True
            if not dash and int(low) == status:
                return True
        except ValueError:
            continue
    return False
