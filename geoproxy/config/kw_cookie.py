"""``cookie NAME [mode] [options]``: the persistence cookie of a backend.

Rules (manual, keyword ``cookie``; HAProxy's cfgparse-listen.c):
1. Modes: ``rewrite``, ``insert``, ``prefix``, and geoproxy's ``route`` (the application's own
   session id ends with ``<delim><server cookie>``, Tomcat's jvmRoute). At most one mode; with
   none, HAProxy only reads the cookie (``CookieMode.PASSIVE``).
2. HAProxy's incompatibilities are errors with HAProxy's words: rewrite with indirect,
   several modes, preserve without insert or indirect.
3. ``route`` writes no cookie, so the options about writing one do not apply to it; only
   ``route-delim C`` (default ``.``) does, and only to it.
4. Each ``cookie`` line replaces the previous one entirely (HAProxy keeps stray attributes;
   geoproxy does not).
"""

from __future__ import annotations

import re

from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import CookieMode, CookiePolicy
from geoproxy.config.units import TimeUnit, UnitError, parse_time

_MODES = {"rewrite": CookieMode.REWRITE, "insert": CookieMode.INSERT,
          "prefix": CookieMode.PREFIX, "route": CookieMode.ROUTE}
_FLAGS = ("indirect", "nocache", "postonly", "preserve", "httponly", "secure", "dynamic")
_VALUED = ("domain", "maxidle", "maxlife", "attr", "route-delim")
_ALL_OPTIONS = ("rewrite", "insert", "prefix", "route", *_FLAGS, *_VALUED)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DOMAIN_CHARS = re.compile(r"[A-Za-z0-9._-]")


def parse_cookie(proxy: ProxyDraft, line: Line) -> None:
    name = line.arg(0)
    if not name:
        line.fail("'cookie' expects <cookie_name> as argument.")
    if not _TOKEN.fullmatch(name):
        line.fail(f"'cookie' : '{name}' is not a valid cookie name (RFC 6265 token).")
    modes: list[str] = []
    flags: set[str] = set()
    values: dict[str, list[str]] = {}
    index = 1
    while index < len(line.args):
        word = line.args[index]
        if word in _MODES:
            modes.append(word)
        elif word in _FLAGS:
            flags.add(word)
        elif word in _VALUED:
            values.setdefault(word, []).append(_value(line, word, line.arg(index + 1)))
            index += 1
        else:
            line.fail(f"'cookie' supports {quoted_list(_ALL_OPTIONS)} options (got '{word}').")
        index += 1
    _check_combination(line, modes, flags, values)
    proxy.settings.cookie = _policy(line, name, modes, flags, values)


def _value(line: Line, option: str, value: str) -> str:
    if not value:
        expected = {"domain": "<domain>", "maxidle": "<idletime> in seconds",
                    "maxlife": "<lifetime> in seconds", "attr": "<value>",
                    "route-delim": "<character>"}[option]
        line.fail(f"'{option}' expects {expected} as argument.")
    if option == "domain":
        bad = next((c for c in value if not _DOMAIN_CHARS.fullmatch(c)), None)
        if bad:
            line.fail(f"character '{bad}' is not permitted in domain name '{value}'.")
        if "." not in value:
            line.warn(f"domain '{value}' contains no embedded dot, this configuration may not "
                      "work properly (see RFC6265#5.2.3).")
    elif option == "attr":
        bad = next((c for c in value if c == ";" or ord(c) < 32 or ord(c) == 127), None)
        if bad:
            line.fail(f"character '%x{ord(bad):02X}' is not permitted in attribute value.")
    elif option == "route-delim" and len(value) != 1:
        line.fail(f"'route-delim' expects one character (got '{value}').")
    elif option in ("maxidle", "maxlife"):
        _seconds(line, option, value)
    return value


def _check_combination(line: Line, modes: list[str], flags: set[str],
                       values: dict[str, list[str]]) -> None:
    if "route" in modes:
        if len(set(modes)) > 1:
            line.fail("cookie 'route' mode is incompatible with 'rewrite', 'insert' and "
                      "'prefix'.")
        extra = sorted(flags | (set(values) - {"route-delim"}))
        if extra:
            line.fail(f"cookie 'route' mode writes no cookie: '{extra[0]}' does not apply to it.")
        return
    if "route-delim" in values:
        line.fail("cookie 'route-delim' only applies to 'route' mode.")
    if "rewrite" in modes and "indirect" in flags:
        line.fail("cookie 'rewrite' and 'indirect' modes are incompatible.")
    if len(set(modes)) > 1:
        line.fail("cookie 'rewrite', 'insert' and 'prefix' modes are incompatible.")
    if "preserve" in flags and "insert" not in modes and "indirect" not in flags:
        line.fail("cookie 'preserve' requires at least 'insert' or 'indirect'.")
    for option in ("maxidle", "maxlife"):
        if option in values and "insert" not in modes:
            line.warn(f"cookie '{option}' only works with 'insert' mode; it is ignored here.")


def _policy(line: Line, name: str, modes: list[str], flags: set[str],
            values: dict[str, list[str]]) -> CookiePolicy:
    mode = _MODES[modes[0]] if modes else CookieMode.PASSIVE
    return CookiePolicy(
        name=name,
        mode=mode,
        location=line.location,
        indirect="indirect" in flags,
        nocache="nocache" in flags,
        postonly="postonly" in flags,
        preserve="preserve" in flags,
        httponly="httponly" in flags,
        secure="secure" in flags,
        domains=tuple(values.get("domain", ())),
        maxidle=_last_seconds(line, "maxidle", values),
        maxlife=_last_seconds(line, "maxlife", values),
        dynamic="dynamic" in flags,
        attrs=tuple(values.get("attr", ())),
        route_delim=values.get("route-delim", ["."])[-1],
    )


def _last_seconds(line: Line, option: str, values: dict[str, list[str]]) -> float | None:
    return _seconds(line, option, values[option][-1]) if option in values else None


def _seconds(line: Line, option: str, text: str) -> float | None:
    try:
        return parse_time(text, TimeUnit.S) or None
    except UnitError as exc:
        if exc.overflow:
            line.fail(f"timer overflow in argument <{text}> to <{option}>, maximum value is "
                      "2147483647 s (~68 years).")
        line.fail(f"unexpected character '{exc.character}' in argument to <{option}>.")
