"""Map converters: ``map(FILE[,DEFAULT])`` and ``map_MATCH[_OUTPUT](FILE[,DEFAULT])``
(``converters.py`` rule 3), and the substitution of a regex's groups they share with
``regsub`` (pure: the map file was read by the configuration parser)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from geoproxy.rules.calls import RuleError
from geoproxy.rules.matchers import match_word, network
from geoproxy.rules.spec import ArgValue, MapFile
from geoproxy.rules.txn import Txn
from geoproxy.rules.values import to_int, to_ip, to_str

Convert = Callable[[object, Txn], object]
Args = tuple[ArgValue, ...]


def backrefs(subst: str) -> Callable[[re.Match[str]], str]:
    """HAProxy's ``\\N`` references in a substitution (a missing group is empty)."""
    parts = re.split(r"\\(\d)", subst)

    def expand(match: re.Match[str]) -> str:
        out = []
        for position, part in enumerate(parts):
            if position % 2:
                group = int(part)
                out.append(match.group(group) or "" if group <= (match.re.groups or 0) else "")
            else:
                out.append(part)
        return "".join(out)

    return expand


MAP_MATCHES: Final = ("str", "beg", "sub", "end", "dir", "dom", "reg", "regm", "int", "ip",
                       "len")
MAP_OUTPUTS: Final = ("str", "int", "ip")


def map_converter(match: str, output: str) -> Callable[[Args], Convert]:
    def made(args: Args) -> Convert:
        source = args[0]
        assert isinstance(source, MapFile)
        default = _typed(str(args[1]), output) if len(args) > 1 else None
        lookup = _lookup(match, source.entries)

        def convert(value: object, txn: Txn) -> object:
            found = lookup(value)
            return default if found is None else _typed(found, output)

        return convert

    return made


def _typed(text: str, output: str) -> object:
    if output == "int":
        return to_int(text)
    if output == "ip":
        return to_ip(text)
    return text


def _lookup(match: str, entries: tuple[tuple[str, str], ...]) -> Callable[[object], str | None]:
    if match == "str":
        exact: dict[str, str] = {}
        for key, value in entries:
            exact.setdefault(key, value)
        return lambda value: exact.get(to_str(value) or "") if value is not None else None
    if match == "int":
        numbers: dict[int, str] = {}
        for key, value in entries:
            number = to_int(key)
            if number is not None:
                numbers.setdefault(number, value)
        return lambda value: numbers.get(n) if (n := to_int(value)) is not None else None
    if match == "ip":
        networks = sorted(((network(key), value) for key, value in entries),
                          key=lambda item: -item[0].prefixlen)

        def by_network(value: object) -> str | None:
            address = to_ip(value)
            if address is None:
                return None
            for network, result in networks:
                if address.version == network.version and address in network:
                    return result
            return None

        return by_network
    if match in ("reg", "regm"):
        regexes = [(re.compile(key), value) for key, value in entries]

        def by_regex(value: object) -> str | None:
            text = to_str(value)
            if text is None:
                return None
            for regex, result in regexes:
                found = regex.search(text)
                if found is not None:
                    return backrefs(result)(found) if match == "regm" else result
            return None

        return by_regex
    tests: dict[str, Callable[[str, str], bool]] = {
        "beg": lambda text, key: text.startswith(key),
        "end": lambda text, key: text.endswith(key),
        "sub": lambda text, key: key in text,
        "dir": lambda text, key: match_word(text, key.strip("/?"), "/?"),
        "dom": lambda text, key: match_word(text, key.strip("/?.:"), "/?.:"),
        "len": lambda text, key: str(len(text)) == key,
    }
    test = tests[match]

    def by_order(value: object) -> str | None:
        text = to_str(value)
        if text is None:
            return None
        for key, result in entries:
            if test(text, key):
                return result
        return None

    return by_order


def map_check(match: str, output: str) -> Callable[[Args], None]:
    """HAProxy checks every key and value of a map when it loads it."""

    def check(args: Args) -> None:
        source = args[0]
        assert isinstance(source, MapFile)
        for line, (key, value) in enumerate(source.entries, start=1):
            bad = None
            if output != "str" and _typed(value, output) is None:
                bad = value
            elif match == "int" and to_int(key) is None:
                bad = key
            elif match == "ip":
                try:
                    network(key)
                except ValueError:
                    bad = key
            elif match in ("reg", "regm"):
                try:
                    re.compile(key)
                except re.error:
                    bad = key
            if bad is not None:
                raise RuleError(f"unable to parse '{bad}' at line {line} of file "
                                f"'{source.path}'")
        if len(args) > 1 and output != "str" and _typed(str(args[1]), output) is None:
            raise RuleError(f"invalid default value '{args[1]}' for an '{output}' map")

    return check
