"""HTTP health checks: ``option httpchk`` and ``http-check send|expect``.

Rules (manual: ``option httpchk``, ``http-check send``, ``http-check expect``):
1. ``option httpchk [[METHOD] URI [VERSION]]``: one argument is the URI. Headers hidden after
   ``\\r\\n`` in VERSION (the 1.x idiom) are read, with HAProxy's deprecation warning.
2. ``http-check send`` changes parts of the request: ``meth``, ``uri``, ``ver``, ``hdr NAME
   VALUE`` (repeatable), ``body``, and an ignored ``comment``.
3. ``http-check expect [!] status|rstatus|string|rstring PATTERN``: one rule per backend (HAProxy
   chains several; geoproxy refuses a second rather than check something else). ``status`` is a
   list of codes and ranges (``200,301-399``); regexes compile at load time.
4. ``http-check`` rules without ``option httpchk`` do nothing; the whole-config pass warns, as
   HAProxy does.
"""

from __future__ import annotations

import dataclasses
import re

from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import HttpCheckExpect, HttpCheckExpectKind

_KINDS = {k.value: k for k in HttpCheckExpectKind}
_STATUS_LIST = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_SEND_PARTS = ("meth", "uri", "ver", "hdr", "body", "comment")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_option_httpchk(proxy: ProxyDraft, line: Line) -> None:
    """``option httpchk`` (``line.args[0]`` is "httpchk")."""
    args = line.args[1:]
    line.at_most(4, "option httpchk")
    current = proxy.settings.check_request
    method, uri, version = current.method, current.uri, current.version
    if len(args) == 1:
        uri = args[0]
    elif args:
        method, uri = args[0], args[1]
        version = args[2] if len(args) > 2 else version
    headers: tuple[tuple[str, str], ...] = ()
    if "\r\n" in version:
        version, headers = _hidden_headers(line, version)
    proxy.settings.httpchk = True
    proxy.settings.check_protocol = None  # the last check option wins (kw_tcp_check rule 3)
    proxy.settings.external_check = None
    proxy.settings.check_request = dataclasses.replace(
        current, method=method, uri=uri, version=version, headers=headers)


def _hidden_headers(line: Line, version: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    line.warn("'option httpchk' : hiding headers or body at the end of the version string is "
              "deprecated. Please, consider to use 'http-check send' directive instead.")
    first, *rest = version.split("\r\n")
    headers: list[tuple[str, str]] = []
    for text in rest:
        if not text:
            continue
        name, colon, value = text.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            line.fail(f"'option httpchk' : '{text}' is not a header 'Name: value'.")
        headers.append((name, value.strip()))
    return first, tuple(headers)


def parse_http_check(proxy: ProxyDraft, line: Line) -> None:
    action = line.arg(0)
    if action == "expect":
        _expect(proxy, line)
    elif action == "send":
        _send(proxy, line)
    elif action in ("send-state", "comment"):
        line.warn(f"'http-check {action}' is ignored by geoproxy.")
        return
    elif action == "disable-on-404":
        line.at_most(1)
        proxy.settings.check_request = dataclasses.replace(proxy.settings.check_request,
                                                           disable_on_404=True)
    elif action in ("connect", "set-var", "unset-var", "set-var-fmt") or \
            action.startswith(("set-var(", "unset-var(", "set-var-fmt(")):
        line.fail(f"'http-check {action}' is not supported by geoproxy.")
    else:
        line.fail(f"'http-check' only supports {quoted_list(('send', 'expect'))} "
                  f"(and ignores 'send-state' and 'comment') but got '{action}'")
    proxy.settings.http_check_location = line.location


def _expect(proxy: ProxyDraft, line: Line) -> None:
    words = list(line.args[1:])
    if not words:
        line.fail("'http-check expect' : expects at least a matching pattern as arguments.")
    negated = False
    if words[0].startswith("!"):
        negated = True
        words[0] = words[0][1:] or ""
        if not words[0]:
            words.pop(0)
    kind_name = words[0] if words else ""
    if kind_name not in _KINDS:
        line.fail(f"'http-check expect' : geoproxy supports "
                  f"{quoted_list(('[!]' + k for k in _KINDS), 'and')} but got '{kind_name}' "
                  "as argument.")
    if len(words) < 2:
        line.fail(f"'http-check expect' : '{kind_name}' expects a <pattern> as argument.")
    if len(words) > 2:
        line.fail(f"'http-check expect' : unexpected argument '{words[2]}' after the pattern.")
    kind, pattern = _KINDS[kind_name], words[1]
    _check_pattern(line, kind, pattern)
    if proxy.rules.http_check_expect is not None:
        line.fail("'http-check expect' : geoproxy supports one 'http-check expect' rule per "
                  f"section (HAProxy would chain them); the first is at "
                  f"{proxy.rules.http_check_expect}.")
    proxy.rules.http_check_expect = line.location
    proxy.settings.check_request = dataclasses.replace(
        proxy.settings.check_request, expect=HttpCheckExpect(kind, pattern, negated))


def _check_pattern(line: Line, kind: HttpCheckExpectKind, pattern: str) -> None:
    if kind is HttpCheckExpectKind.STATUS and not _STATUS_LIST.fullmatch(pattern):
        bad = next((c for c in pattern if not (c.isdigit() or c in ",-")), pattern[0])
        line.fail(f"'http-check expect' : invalid character '{bad}' in the list of status "
                  "codes.")
    if kind in (HttpCheckExpectKind.RSTATUS, HttpCheckExpectKind.RSTRING):
        try:
            re.compile(pattern)
        except re.error as exc:
            line.fail(f"'http-check expect' : regex '{pattern}' is invalid "
                      f"(error={exc.msg}, erroffset={exc.pos}).")


def _send(proxy: ProxyDraft, line: Line) -> None:
    request = proxy.settings.check_request
    parts: dict[str, str] = {}
    headers = list(request.headers)
    words, index = line.args, 1
    while index < len(words):
        part, value = words[index], line.arg(index + 1)
        if part not in _SEND_PARTS:
            line.fail(f"'http-check send' : expects {quoted_list(_SEND_PARTS, 'or')} but got "
                      f"'{part}' as argument.")
        if not value:
            line.fail(f"'http-check send' : '{part}' expects a value as argument.")
        if part == "hdr":
            headers.append(_send_header(line, value, line.arg(index + 2)))
            index += 1
        parts[part] = value
        index += 2
    proxy.settings.check_request = dataclasses.replace(
        request,
        method=parts.get("meth", request.method),
        uri=parts.get("uri", request.uri),
        version=parts.get("ver", request.version),
        body=parts.get("body", request.body),
        headers=tuple(headers),
    )


def _send_header(line: Line, name: str, value: str) -> tuple[str, str]:
    if not value or not _HEADER_NAME.fullmatch(name):
        line.fail("'http-check send' : 'hdr' expects <name> and <value> as arguments.")
    return name, value
