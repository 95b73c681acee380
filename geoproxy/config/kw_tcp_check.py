"""``tcp-check`` rules, ``option tcp-check`` and HAProxy's protocol checks: ``option
redis-check``, ``mysql-check [user U [post-41|pre-41]]``, ``pgsql-check user U``,
``ldap-check``, ``smtpchk [EHLO|HELO DOMAIN]``, ``ssl-hello-chk``.

Rules (manual 4.2 ``tcp-check``, ``option ...-check``; HAProxy 2.6's tcpcheck.c):
1. ``tcp-check connect [port N] [send-proxy] [default] [linger] [comment C]``, ``send DATA``,
   ``send-binary HEX``, ``expect [min-recv N] [ok-status S] [error-status S] [tout-status S]
   [on-success TEXT] [on-error TEXT] [comment C] [!] string|rstring|binary|rbinary PATTERN``,
   and ``comment TEXT``. A ``connect`` must come first when the ruleset has one. TLS on a check
   connection, log-format variants (``send-lf``...), variables and SOCKS are refused by name.
2. A protocol check is a fixed ruleset, built here the way HAProxy builds it (the same bytes
   sent, the same patterns expected), so the checker runs one engine for all of them.
3. The last ``option`` naming a check wins, ``option httpchk`` included (HAProxy's
   ``PR_O2_CHK_ANY``). A section's own ``tcp-check`` lines replace its defaults'.
"""

from __future__ import annotations

import re

from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model_tcp import CheckProtocol, ExpectKind, TcpCheckAction, TcpCheckStep

Step = TcpCheckStep
A = TcpCheckAction
_STATUSES = ("L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7OK", "L7OKC", "L7TOUT",
             "L7RSP", "L7STS")
_EXPECT_KINDS = {kind.value: kind for kind in ExpectKind if kind is not ExpectKind.CUSTOM}
_REFUSED_CONNECT = ("ssl", "sni", "alpn", "addr", "via-socks4", "proto")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def parse_tcp_check(proxy: ProxyDraft, line: Line) -> None:
    action = line.arg(0)
    settings = proxy.settings
    if not proxy.rules.own_tcp_checks:
        proxy.rules.own_tcp_checks = True
        settings.tcp_checks = []
    if action == "comment":
        if not line.arg(1):
            line.fail("'tcp-check comment' expects a string as argument.")
        line.at_most(2, "tcp-check comment")
        step = Step(A.COMMENT, comment=line.arg(1))
    elif action == "connect":
        step = _connect(line, settings.tcp_checks)
    elif action in ("send", "send-binary"):
        step = _send(line, action)
    elif action == "expect":
        step = _expect(line)
    elif action in ("send-lf", "send-binary-lf") or action.startswith(("set-var", "unset-var")):
        line.fail(f"'tcp-check {action}' is not supported by geoproxy.")
    else:
        line.fail(f"'tcp-check' expects 'comment', 'connect', 'send', 'send-binary', 'expect' "
                  f"(geoproxy's subset) but got '{action}' as argument.")
    settings.tcp_checks.append(step)
    settings.tcp_check_location = settings.tcp_check_location or line.location


def _options(line: Line, start: int, allowed: dict[str, int]) -> tuple[dict[str, str], int]:
    """``word [value]`` options from ``start``: the values of those in ``allowed`` (word ->
    arity), and the index of the first word that is none of them."""
    found: dict[str, str] = {}
    index = start
    while index < len(line.args) and line.args[index] in allowed:
        word = line.args[index]
        arity = allowed[word]
        if arity and not line.arg(index + 1):
            line.fail(f"'tcp-check {line.arg(0)}' : '{word}' expects a value as argument.")
        found[word] = line.arg(index + 1) if arity else "1"
        index += 1 + arity
    return found, index


def _connect(line: Line, earlier: list[TcpCheckStep]) -> TcpCheckStep:
    if any(step.action is not A.COMMENT for step in earlier):
        line.fail("'tcp-check connect' : first step MUST also be a 'connect', optionally "
                  "preceded by a 'set-var', an 'unset-var' or a 'comment', when there is a "
                  "'connect' step in the tcp-check ruleset.")
    words = {"port": 1, "send-proxy": 0, "default": 0, "linger": 0, "comment": 1}
    found, index = _options(line, 1, words)
    if index < len(line.args):
        word = line.args[index]
        if word in _REFUSED_CONNECT:
            line.fail(f"'tcp-check connect' : '{word}' is not supported by geoproxy (checks "
                      "connect in plain TCP).")
        line.fail(f"'tcp-check connect' : expects 'comment', 'port', 'send-proxy', 'linger' "
                  f"or 'default' but got '{word}' as argument.")
    port = 0
    if "port" in found:
        text = found["port"]
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            line.fail(f"'tcp-check connect' : 'port' expects a valid TCP port (from range 1 to "
                      f"65535), got {text}.")
        port = int(text)
    return Step(A.CONNECT, comment=found.get("comment", ""), port=port,
                send_proxy="send-proxy" in found)


def _send(line: Line, action: str) -> TcpCheckStep:
    data = line.arg(1)
    if not data:
        kind = "binary string" if action == "send-binary" else "string"
        line.fail(f"'tcp-check {action}' expects a {kind} as argument.")
    found, index = _options(line, 2, {"comment": 1})
    if index < len(line.args):
        line.fail(f"'tcp-check {action}' : expects 'comment' but got '{line.args[index]}' as "
                  "argument.")
    if action == "send-binary":
        if not _HEX.fullmatch(data):
            line.fail(f"'tcp-check send-binary' : '{data}' invalid binary string (an even "
                      "number of hex digits is expected).")
        payload = bytes.fromhex(data)
    else:
        payload = data.encode("latin-1", "replace")
    return Step(A.SEND, comment=found.get("comment", ""), data=payload)


def _expect(line: Line) -> TcpCheckStep:
    words = {"min-recv": 1, "comment": 1, "ok-status": 1, "error-status": 1, "tout-status": 1,
             "on-success": 1, "on-error": 1, "status-code": 1}
    args = list(line.args[1:])
    if not args:
        line.fail("'tcp-check expect' : expects at least a matching pattern as arguments.")
    found: dict[str, str] = {}
    negated, kind, pattern = False, None, ""
    index = 0
    while index < len(args):
        word = args[index]
        if word in words:
            if index + 1 >= len(args):
                line.fail(f"'tcp-check expect' : '{word}' expects a value as argument.")
            found[word] = args[index + 1]
            index += 2
            continue
        if word.startswith("!"):
            negated = not negated
            args[index] = word[1:]
            if not args[index]:
                index += 1
            continue
        if word in ("string-lf", "binary-lf", "custom"):
            line.fail(f"'tcp-check expect {word}' is not supported by geoproxy.")
        if word not in _EXPECT_KINDS or kind is not None:
            line.fail(f"'tcp-check expect' : expects 'min-recv', 'comment', 'ok-status', "
                      f"'error-status', 'tout-status', 'on-success', 'on-error', '[!]string', "
                      f"'[!]rstring', '[!]binary' or '[!]rbinary' but got '{word}' as argument.")
        kind = _EXPECT_KINDS[word]
        if index + 1 >= len(args):
            line.fail(f"'tcp-check expect' : '{word}' expects a <pattern> as argument.")
        pattern = args[index + 1]
        index += 2
    if kind is None:
        line.fail("'tcp-check expect' : expects a pattern ('[!]string', '[!]rstring', "
                  "'[!]binary' or '[!]rbinary').")
    _check_pattern(line, kind, pattern)
    for status in ("ok-status", "error-status", "tout-status"):
        if status in found and found[status] not in _STATUSES:
            line.fail(f"'tcp-check expect' : '{status}' only supports "
                      f"{quoted_list(_STATUSES, 'or')} (got '{found[status]}').")
    if "status-code" in found:
        line.fail("'tcp-check expect' : 'status-code' is not supported by geoproxy.")
    return Step(A.EXPECT, comment=found.get("comment", ""), kind=kind, pattern=pattern,
                negated=negated, min_recv=_min_recv(line, found.get("min-recv")),
                error_status=found.get("error-status", ""), ok_status=found.get("ok-status", ""),
                on_success=found.get("on-success", ""), on_error=found.get("on-error", ""))


def _min_recv(line: Line, text: str | None) -> int:
    if text is None:
        return -1
    if not text.lstrip("-").isdigit() or int(text) < -1:
        line.fail("'tcp-check expect' : 'min-recv' expects -1 or an integer from 0 to INT_MAX.")
    return int(text)


def _check_pattern(line: Line, kind: ExpectKind, pattern: str) -> None:
    if kind is ExpectKind.BINARY and (not pattern or not _HEX.fullmatch(pattern)):
        line.fail(f"'tcp-check expect binary' : '{pattern}' invalid binary string (an even "
                  "number of hex digits is expected).")
    if kind in (ExpectKind.RSTRING, ExpectKind.RBINARY):
        try:
            re.compile(pattern)
        except re.error as exc:
            line.fail(f"'tcp-check expect' : regex '{pattern}' is invalid (error={exc.msg}, "
                      f"erroffset={exc.pos}).")


# -- the options ---------------------------------------------------------------------------


def _choose(proxy: ProxyDraft, line: Line, protocol: CheckProtocol,
            steps: tuple[TcpCheckStep, ...] = ()) -> None:
    """Rule 3: this option's check replaces any other."""
    settings = proxy.settings
    settings.httpchk = False
    settings.external_check = None
    settings.check_protocol = protocol
    settings.check_steps = steps
    settings.check_location = line.location


def option_tcp_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option tcp-check")
    _choose(proxy, line, CheckProtocol.TCP_CHECK)


_REDIS = (
    Step(A.SEND, data=b"*1\r\n$4\r\nPING\r\n"),
    Step(A.EXPECT, kind=ExpectKind.STRING, pattern="+PONG\r\n", error_status="L7STS",
         on_error="%line", on_success="Redis server is ok"),
)


def option_redis_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option redis-check")
    _choose(proxy, line, CheckProtocol.REDIS, _REDIS)


_LDAP = (
    Step(A.SEND, data=bytes.fromhex("300C020101600702010304008000")),
    Step(A.EXPECT, kind=ExpectKind.RBINARY, pattern="^30", min_recv=14,
         on_error="Not LDAPv3 protocol"),
    Step(A.EXPECT, kind=ExpectKind.CUSTOM, custom="ldap"),
)


def option_ldap_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option ldap-check")
    _choose(proxy, line, CheckProtocol.LDAP, _LDAP)


_SSL_HELLO = (
    Step(A.SEND, custom="sslv3-hello"),
    Step(A.EXPECT, kind=ExpectKind.RBINARY, pattern="^1[56]", min_recv=5, ok_status="L6OK",
         error_status="L6RSP"),
)


def option_ssl_hello_chk(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option ssl-hello-chk")
    _choose(proxy, line, CheckProtocol.SSL_HELLO, _SSL_HELLO)


def option_smtpchk(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(3, "option smtpchk")
    verb, domain = line.arg(1), line.arg(2)
    command = f"{verb} {domain}" if verb in ("EHLO", "HELO") and domain else "HELO localhost"
    steps = (
        Step(A.CONNECT),
        Step(A.EXPECT, kind=ExpectKind.RSTRING, pattern="^[0-9]{3}[ \r]", min_recv=4,
             error_status="L7RSP", on_error="%line"),
        Step(A.EXPECT, kind=ExpectKind.RSTRING, pattern="^2[0-9]{2}[ \r]", min_recv=4,
             error_status="L7STS", on_error="%smtp"),
        Step(A.SEND, data=f"{command}\r\n".encode("latin-1")),
        Step(A.EXPECT, kind=ExpectKind.RSTRING, pattern="^2[0-9]{2}[- \r]", min_recv=4,
             error_status="L7STS", on_error="%smtp", on_success="%smtp"),
    )
    _choose(proxy, line, CheckProtocol.SMTP, steps)


def option_pgsql_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(3, "option pgsql-check")
    if not line.arg(1) or not line.arg(2):
        line.fail("'option pgsql-check' expects 'user <username>' as argument.")
    if line.arg(1) != "user":
        line.fail("'option pgsql-check' only supports optional values: 'user'.")
    user = line.arg(2).encode("latin-1", "replace")
    startup = (15 + len(user)).to_bytes(4, "big") + bytes.fromhex("00030000") + b"user\x00"
    steps = (
        Step(A.CONNECT),
        Step(A.SEND, data=startup + user + b"\x00\x00"),
        Step(A.EXPECT, kind=ExpectKind.RSTRING, pattern="^E", negated=True, min_recv=5,
             error_status="L7RSP", on_error="%pgsql"),
        Step(A.EXPECT, kind=ExpectKind.RBINARY,
             pattern="^52000000(08|0A|0C)000000(00|02|03|04|05|06)", min_recv=9,
             error_status="L7STS", on_success="PostgreSQL server is ok",
             on_error="PostgreSQL unknown error"),
    )
    _choose(proxy, line, CheckProtocol.PGSQL, steps)


def option_mysql_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(4, "option mysql-check")
    if not line.arg(1):
        _choose(proxy, line, CheckProtocol.MYSQL,
                (Step(A.CONNECT), Step(A.EXPECT, kind=ExpectKind.CUSTOM, custom="mysql-hello")))
        return
    if line.arg(1) != "user":
        line.fail(f"'option mysql-check' only supports optional values: 'user' (got "
                  f"'{line.arg(1)}').")
    if not line.arg(2):
        line.fail("'option mysql-check user' expects <username> as argument.")
    version = line.arg(3) or "post-41"
    if version not in ("post-41", "pre-41"):
        line.fail(f"keyword 'user' only supports 'post-41' and 'pre-41' (got '{version}').")
    user = line.arg(2).encode("latin-1", "replace")
    # capabilities, max packet (and for 4.1+: charset, 23 zero bytes), the user name, its
    # terminator and a zero filler, as HAProxy sends them
    if version == "post-41":
        body = bytes.fromhex("00820000" "00800001" "21") + bytes(23) + user + b"\x00\x00"
    else:
        body = bytes.fromhex("0080" "000001") + user + b"\x00\x00"
    # the login packet (sequence 1), then COM_QUIT (a packet of its own, sequence 0)
    login = len(body).to_bytes(3, "little") + b"\x01" + body
    packet = login + bytes.fromhex("010000" "00" "01")
    steps = (
        Step(A.CONNECT),
        Step(A.SEND, data=packet),
        Step(A.EXPECT, kind=ExpectKind.CUSTOM, custom="mysql-hello"),
        Step(A.EXPECT, kind=ExpectKind.CUSTOM, custom="mysql-ok"),
    )
    _choose(proxy, line, CheckProtocol.MYSQL, steps)

