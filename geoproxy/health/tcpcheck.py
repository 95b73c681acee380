"""One run of a ``tcp-check`` ruleset (``option tcp-check`` and every protocol check), as
HAProxy 2.6's ``tcpcheck_main`` runs it.

Rules:
1. A ruleset that does not start with ``connect`` gets the implicit one (the server's check
   address and port). ``connect`` opens a connection (``port`` N overrides the port); with
   ``send-proxy``, or the server's ``check-send-proxy``, a PROXY header without a client (v2
   LOCAL, v1 UNKNOWN) goes first.
2. ``send`` writes its bytes and empties what was received; ``expect`` reads (first after a
   send or a connect, then whenever it must wait) and matches the bytes received since: a
   ``string``/``binary`` anywhere in them, an ``rstring`` regex over them, an ``rbinary`` regex
   over their upper-case hex dump; ``!`` inverts. An expect waits for more bytes while fewer
   than its pattern's length (or ``min-recv``) arrived, or, without ``min-recv``, while nothing
   matched, until the server closes, the buffer (16 KB) is full, or the check's time is up.
3. The first failing rule ends the check with its ``error-status`` (else L7RSP) and text: its
   ``on-error``, else, for ``option tcp-check``, HAProxy's "TCPCHK did not match content ... at
   step N" (steps numbered from 1, the implicit connect being 0), with the rule's comment. When
   every rule passed: the last expect's ``ok-status`` (else L7OK) and ``on-success`` (else
   "(tcp-check)" for ``option tcp-check``); a ruleset ending with a connect is L4OK.
4. Special ``on-error``/``on-success`` texts stand for HAProxy's log-format expressions on the
   reply: ``%line`` (the first line), ``%smtp`` (the first line after its code), ``%pgsql``
   (a PostgreSQL error message).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geoproxy.config.model_tcp import (
    CheckProtocol,
    ExpectKind,
    ProxyProtocol,
    TcpCheck,
    TcpCheckAction,
    TcpCheckStep,
)
from geoproxy.health.protocols import CUSTOM, Outcome, sslv3_hello
from geoproxy.tcp.proxyproto import encode_v1, encode_v2

if TYPE_CHECKING:
    from geoproxy.runtime.tls_client import ClientTls

BUFFER_SIZE = 16384
STATUS_TEXT = {
    "L4OK": "Layer4 check passed", "L4TOUT": "Layer4 timeout",
    "L4CON": "Layer4 connection problem", "L6OK": "Layer6 check passed",
    "L6TOUT": "Layer6 timeout", "L6RSP": "Layer6 invalid response",
    "L7OK": "Layer7 check passed", "L7OKC": "Layer7 check conditionally passed",
    "L7TOUT": "Layer7 timeout", "L7RSP": "Layer7 invalid response",
    "L7STS": "Layer7 wrong status",
}
_PASSING = ("L4OK", "L6OK", "L7OK", "L7OKC")
A = TcpCheckAction


@dataclass(frozen=True, slots=True)
class TcpCheckTarget:
    """Where a ruleset runs: the check address, the overall time allowed, the connect's."""

    host: str
    port: int
    timeout: float
    connect_timeout: float
    check: TcpCheck
    send_proxy: ProxyProtocol | None = None  # the server's check-send-proxy header
    tls: ClientTls | None = None  # check-ssl (or ssl): each connect shakes hands


@dataclass(frozen=True, slots=True)
class TcpCheckResult:
    passed: bool
    code: str
    description: str


def describe(status: str, info: str) -> str:
    text = STATUS_TEXT.get(status, status)
    return f'{text}, info: "{info}"' if info else text


class _Failed(Exception):
    def __init__(self, status: str, info: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.info = info


class _Run:
    """One check: its connection, what it received, where it is (rules 1 to 3)."""

    def __init__(self, target: TcpCheckTarget) -> None:
        self.target = target
        self.deadline = time.monotonic() + target.timeout
        self.sock: socket.socket | None = None
        self.received = b""
        self.closed = False  # the server ended its stream (or failed)
        self.must_read = True

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        return left

    def connect(self, step: TcpCheckStep) -> None:
        self.close()
        port = step.port or self.target.port
        try:
            self.sock = socket.create_connection(
                (self.target.host, port), timeout=min(self.target.connect_timeout, self.left()))
        except TimeoutError:
            raise _Failed("L4TOUT") from None
        except OSError as error:
            raise _Failed("L4CON", error.strerror or str(error)) from None
        self.received, self.closed, self.must_read = b"", False, True
        if self.target.tls is not None:
            try:
                self.sock = self.target.tls.wrap(self.sock, self.left())
            except TimeoutError:
                raise _Failed("L6TOUT") from None
            except OSError as error:
                raise _Failed("L6RSP", str(error)) from None
        version = self.target.send_proxy
        if step.send_proxy and version is None:
            version = ProxyProtocol.V1
        if version is not None:
            self.send(encode_v2(None) if version is ProxyProtocol.V2 else encode_v1(None))

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(self.left())
            self.sock.sendall(data)
        except TimeoutError:
            raise _Failed("L7TOUT") from None
        except OSError as error:
            raise _Failed("L7RSP", error.strerror or str(error)) from None
        self.received, self.must_read = b"", True

    def read(self) -> None:
        assert self.sock is not None
        if self.closed or len(self.received) >= BUFFER_SIZE:
            return
        try:
            self.sock.settimeout(self.left())
            data = self.sock.recv(BUFFER_SIZE - len(self.received))
        except TimeoutError:
            raise  # the expect says where (_timeout_info)
        except OSError:
            data = b""  # a reset after data: let the expect judge what came (HAProxy's rule)
        if not data:
            self.closed = True
        self.received += data
        self.must_read = False

    @property
    def last_read(self) -> bool:
        return self.closed or len(self.received) >= BUFFER_SIZE

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run_tcp_check(target: TcpCheckTarget) -> TcpCheckResult:
    """Run ``target``'s ruleset once; never raises."""
    run = _Run(target)
    steps = list(target.check.steps)
    numbered = _number(steps)
    try:
        last_action: TcpCheckAction | None = None
        outcome: Outcome | None = None
        if not numbered or numbered[0][0].action is not A.CONNECT:
            run.connect(TcpCheckStep(A.CONNECT))  # the implicit connect (rule 1)
        for index, (step, step_id) in enumerate(numbered):
            if step.action is A.CONNECT:
                run.connect(step)
            elif step.action is A.SEND:
                run.send(sslv3_hello() if step.custom == "sslv3-hello" else step.data)
            else:
                final_rule = index == len(numbered) - 1
                outcome = _expect(run, step, step_id, target.check.protocol, final_rule)
            last_action = step.action
        return _success(target, steps, last_action, outcome, run.received)
    except _Failed as failed:
        return TcpCheckResult(False, failed.status, describe(failed.status, failed.info))
    except TimeoutError:
        return TcpCheckResult(False, "L7TOUT", describe("L7TOUT", ""))
    finally:
        run.close()


def _number(steps: list[TcpCheckStep]) -> list[tuple[TcpCheckStep, int]]:
    """The rules to run with HAProxy's step ids; comments name the rule after them."""
    numbered: list[tuple[TcpCheckStep, int]] = []
    comment = ""
    for position, step in enumerate(steps):
        if step.action is A.COMMENT:
            comment = step.comment
            continue
        if comment and not step.comment:
            step = dataclasses.replace(step, comment=comment)
        comment = ""
        numbered.append((step, position + 1))
    return numbered


def _expect(run: _Run, step: TcpCheckStep, step_id: int, protocol: CheckProtocol,
            final_rule: bool) -> Outcome | None:
    try:
        return _expect_in_time(run, step, step_id, protocol, final_rule)
    except TimeoutError:
        raise _Failed("L6TOUT" if step.error_status == "L6RSP" else "L7TOUT",
                      _timeout_info(step, step_id)) from None


def _timeout_info(step: TcpCheckStep, step_id: int) -> str:
    """HAProxy's text for a check that timed out in an expect."""
    if step.kind is ExpectKind.STRING:
        what = f"expect string '{step.pattern}'"
    elif step.kind is ExpectKind.BINARY:
        what = f"expect binary '{step.pattern}'"
    elif step.kind is ExpectKind.RSTRING:
        what = "expect regex"
    elif step.kind is ExpectKind.RBINARY:
        what = "expect binary regex"
    else:
        what = "expect custom function"
    info = f" at step {step_id} of tcp-check ({what})"
    return f"{info} comment: '{step.comment}'" if step.comment else info


def _expect_in_time(run: _Run, step: TcpCheckStep, step_id: int, protocol: CheckProtocol,
                    final_rule: bool) -> Outcome | None:
    if run.must_read:
        run.read()
        if not run.received and run.closed:
            info = f"TCPCHK got an empty response at step {step_id}"
            if step.comment:
                info += f" comment: '{step.comment}'"
            raise _Failed(step.error_status or "L7RSP", info)
    while True:
        if step.kind is ExpectKind.CUSTOM:
            outcome = CUSTOM[step.custom](run.received, run.last_read, final_rule)
            if outcome is None:
                run.read()
                continue
            if not outcome.passed:
                raise _Failed(outcome.status, outcome.info)
            return outcome
        verdict = _match(step, run.received, run.last_read)
        if verdict is None:
            run.read()
            continue
        if verdict:
            return None
        info = _reply_text(step.on_error, run.received)
        if not info and protocol is CheckProtocol.TCP_CHECK:
            info = _generic_error(step, step_id)
        elif step.comment:
            info += f" comment: {step.comment}"
        raise _Failed(step.error_status or "L7RSP", info)


def _match(step: TcpCheckStep, data: bytes, last: bool) -> bool | None:
    """The expect's verdict on ``data``; None: wait for more (rule 2)."""
    kind = step.kind
    if not last:
        if kind in (ExpectKind.STRING, ExpectKind.BINARY) and len(data) < _needed(step):
            return None
        if step.min_recv > 0 and len(data) < step.min_recv:
            return None
    if kind is ExpectKind.STRING:
        found = step.pattern.encode("latin-1", "replace") in data
    elif kind is ExpectKind.BINARY:
        found = bytes.fromhex(step.pattern) in data
    elif kind is ExpectKind.RSTRING:
        found = re.search(step.pattern, data.decode("latin-1")) is not None
    else:
        found = re.search(step.pattern, data.hex().upper()) is not None
    if not found and not last and step.min_recv == -1:
        return None
    return found != step.negated


def _needed(step: TcpCheckStep) -> int:
    if step.kind is ExpectKind.BINARY:
        return len(step.pattern) // 2
    return len(step.pattern.encode("latin-1", "replace"))


def _generic_error(step: TcpCheckStep, step_id: int) -> str:
    head = "TCPCHK matched unwanted content" if step.negated else "TCPCHK did not match content"
    if step.kind is ExpectKind.STRING:
        text = f"{head} '{step.pattern}' at step {step_id}"
    elif step.kind is ExpectKind.BINARY:
        text = f"{head} (binary) at step {step_id}"
    elif step.kind is ExpectKind.RSTRING:
        text = f"{head} (regex) at step {step_id}"
    else:
        text = f"{head} (binary regex) at step {step_id}"
    return f"{text} comment: {step.comment}" if step.comment else text


def _reply_text(template: str, data: bytes) -> str:
    """Rule 4."""
    if template == "%line":
        return data.decode("latin-1").split("\r", 1)[0].split("\n", 1)[0]
    if template == "%smtp":
        return data[4:].decode("latin-1").lstrip(" ").split("\r", 1)[0].split("\n", 1)[0]
    if template == "%pgsql":
        return data[6:].decode("latin-1").replace("\x00", " ").strip()
    return template


def _success(target: TcpCheckTarget, steps: list[TcpCheckStep],
             last_action: TcpCheckAction | None, outcome: Outcome | None,
             received: bytes) -> TcpCheckResult:
    proto = target.check.protocol is CheckProtocol.TCP_CHECK
    if last_action is A.EXPECT:
        last = next(s for s in reversed(steps) if s.action is A.EXPECT)
        if outcome is not None and outcome.status:
            status, info = outcome.status, outcome.info
        else:
            status = last.ok_status or "L7OK"
            info = _reply_text(last.on_success, received) if last.on_success else ""
            if not info and proto:
                info = "(tcp-check)"
        return TcpCheckResult(status in _PASSING, status, describe(status, info))
    if last_action is A.CONNECT or last_action is None:
        explicit = any(s.action is A.CONNECT for s in steps)
        info = "(tcp-check)" if explicit else ""
        return TcpCheckResult(True, "L4OK", describe("L4OK", info))
    return TcpCheckResult(True, "L7OK", describe("L7OK", "(tcp-check)"))
